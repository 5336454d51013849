//! The operations this crate answers, routed by path (`../shared/spec/kvs-api.md` §1.3): the
//! control plane (`kinesisvideo`), the media plane (`kinesis-video-media`), the signaling and
//! WebRTC storage services (answered "not implemented"), and Vigil's own camera operations.
//! Archived media (`kinesis-video-archived-media`) is `vigil-api-playback`'s; no two
//! operations of either crate share a path, so one host:port serves them all. One enum
//! variant per AWS operation; [`crate::service`] dispatches with one exhaustive `match`, so an
//! operation without a handler does not compile.

/// A KVS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Operation {
    // kinesisvideo (control plane)
    CreateStream,
    DescribeStream,
    ListStreams,
    UpdateStream,
    DeleteStream,
    UpdateDataRetention,
    GetDataEndpoint,
    TagStream,
    UntagStream,
    ListTagsForStream,
    TagResource,
    UntagResource,
    ListTagsForResource,
    DescribeImageGenerationConfiguration,
    UpdateImageGenerationConfiguration,
    DescribeNotificationConfiguration,
    UpdateNotificationConfiguration,
    DescribeStreamStorageConfiguration,
    UpdateStreamStorageConfiguration,
    DescribeMediaStorageConfiguration,
    UpdateMediaStorageConfiguration,
    DescribeMappedResourceConfiguration,
    StartEdgeConfigurationUpdate,
    DescribeEdgeConfiguration,
    DeleteEdgeConfiguration,
    ListEdgeAgentConfigurations,
    CreateSignalingChannel,
    DescribeSignalingChannel,
    ListSignalingChannels,
    UpdateSignalingChannel,
    DeleteSignalingChannel,
    GetSignalingChannelEndpoint,
    // kinesis-video-media
    PutMedia,
    GetMedia,
    // kinesis-video-signaling
    GetIceServerConfig,
    SendAlexaOfferToMaster,
    // kinesis-video-webrtc-storage
    JoinStorageSession,
    JoinStorageSessionAsViewer,
    // Vigil's own, not KVS: the server's RTSP cameras ([`crate::cameras`]).
    ListCameras,
    PutCamera,
    DeleteCamera,
}

impl vigil_api_kvs_common::Operation for Operation {
    fn name(self) -> &'static str {
        Operation::name(self)
    }
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 41] = [
        Self::CreateStream,
        Self::DescribeStream,
        Self::ListStreams,
        Self::UpdateStream,
        Self::DeleteStream,
        Self::UpdateDataRetention,
        Self::GetDataEndpoint,
        Self::TagStream,
        Self::UntagStream,
        Self::ListTagsForStream,
        Self::TagResource,
        Self::UntagResource,
        Self::ListTagsForResource,
        Self::DescribeImageGenerationConfiguration,
        Self::UpdateImageGenerationConfiguration,
        Self::DescribeNotificationConfiguration,
        Self::UpdateNotificationConfiguration,
        Self::DescribeStreamStorageConfiguration,
        Self::UpdateStreamStorageConfiguration,
        Self::DescribeMediaStorageConfiguration,
        Self::UpdateMediaStorageConfiguration,
        Self::DescribeMappedResourceConfiguration,
        Self::StartEdgeConfigurationUpdate,
        Self::DescribeEdgeConfiguration,
        Self::DeleteEdgeConfiguration,
        Self::ListEdgeAgentConfigurations,
        Self::CreateSignalingChannel,
        Self::DescribeSignalingChannel,
        Self::ListSignalingChannels,
        Self::UpdateSignalingChannel,
        Self::DeleteSignalingChannel,
        Self::GetSignalingChannelEndpoint,
        Self::PutMedia,
        Self::GetMedia,
        Self::GetIceServerConfig,
        Self::SendAlexaOfferToMaster,
        Self::JoinStorageSession,
        Self::JoinStorageSessionAsViewer,
        Self::ListCameras,
        Self::PutCamera,
        Self::DeleteCamera,
    ];

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Self::CreateStream => "/createStream",
            Self::DescribeStream => "/describeStream",
            Self::ListStreams => "/listStreams",
            Self::UpdateStream => "/updateStream",
            Self::DeleteStream => "/deleteStream",
            Self::UpdateDataRetention => "/updateDataRetention",
            Self::GetDataEndpoint => "/getDataEndpoint",
            Self::TagStream => "/tagStream",
            Self::UntagStream => "/untagStream",
            Self::ListTagsForStream => "/listTagsForStream",
            Self::TagResource => "/TagResource",
            Self::UntagResource => "/UntagResource",
            Self::ListTagsForResource => "/ListTagsForResource",
            Self::DescribeImageGenerationConfiguration => "/describeImageGenerationConfiguration",
            Self::UpdateImageGenerationConfiguration => "/updateImageGenerationConfiguration",
            Self::DescribeNotificationConfiguration => "/describeNotificationConfiguration",
            Self::UpdateNotificationConfiguration => "/updateNotificationConfiguration",
            Self::DescribeStreamStorageConfiguration => "/describeStreamStorageConfiguration",
            Self::UpdateStreamStorageConfiguration => "/updateStreamStorageConfiguration",
            Self::DescribeMediaStorageConfiguration => "/describeMediaStorageConfiguration",
            Self::UpdateMediaStorageConfiguration => "/updateMediaStorageConfiguration",
            Self::DescribeMappedResourceConfiguration => "/describeMappedResourceConfiguration",
            Self::StartEdgeConfigurationUpdate => "/startEdgeConfigurationUpdate",
            Self::DescribeEdgeConfiguration => "/describeEdgeConfiguration",
            Self::DeleteEdgeConfiguration => "/deleteEdgeConfiguration",
            Self::ListEdgeAgentConfigurations => "/listEdgeAgentConfigurations",
            Self::CreateSignalingChannel => "/createSignalingChannel",
            Self::DescribeSignalingChannel => "/describeSignalingChannel",
            Self::ListSignalingChannels => "/listSignalingChannels",
            Self::UpdateSignalingChannel => "/updateSignalingChannel",
            Self::DeleteSignalingChannel => "/deleteSignalingChannel",
            Self::GetSignalingChannelEndpoint => "/getSignalingChannelEndpoint",
            Self::PutMedia => "/putMedia",
            Self::GetMedia => "/getMedia",
            Self::GetIceServerConfig => "/v1/get-ice-server-config",
            Self::SendAlexaOfferToMaster => "/v1/send-alexa-offer-to-master",
            Self::JoinStorageSession => "/joinStorageSession",
            Self::JoinStorageSessionAsViewer => "/joinStorageSessionAsViewer",
            Self::ListCameras => "/vigil/listCameras",
            Self::PutCamera => "/vigil/putCamera",
            Self::DeleteCamera => "/vigil/deleteCamera",
        }
    }

    /// The operation at `path` (exact, case-sensitive, as the SDKs send it).
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.path() == path)
    }

    /// The AWS name, as in IAM actions and key policies (`kinesisvideo:PutMedia`); Vigil's
    /// own operations are named the same way (`ListCameras`).
    pub fn name(self) -> &'static str {
        // The path without its slash, first letter upper-cased, is the name for every
        // operation but the signaling ones and Vigil's own.
        match self {
            Self::GetIceServerConfig => "GetIceServerConfig",
            Self::SendAlexaOfferToMaster => "SendAlexaOfferToMaster",
            Self::ListCameras => "ListCameras",
            Self::PutCamera => "PutCamera",
            Self::DeleteCamera => "DeleteCamera",
            other => NAMES
                .iter()
                .find(|(op, _)| *op == other)
                .map_or("Unknown", |(_, n)| n),
        }
    }

    /// Whether the request body is streamed (PutMedia) rather than one JSON document.
    pub fn streams_request_body(self) -> bool {
        self == Self::PutMedia
    }
}

const NAMES: [(Operation, &str); 36] = [
    (Operation::CreateStream, "CreateStream"),
    (Operation::DescribeStream, "DescribeStream"),
    (Operation::ListStreams, "ListStreams"),
    (Operation::UpdateStream, "UpdateStream"),
    (Operation::DeleteStream, "DeleteStream"),
    (Operation::UpdateDataRetention, "UpdateDataRetention"),
    (Operation::GetDataEndpoint, "GetDataEndpoint"),
    (Operation::TagStream, "TagStream"),
    (Operation::UntagStream, "UntagStream"),
    (Operation::ListTagsForStream, "ListTagsForStream"),
    (Operation::TagResource, "TagResource"),
    (Operation::UntagResource, "UntagResource"),
    (Operation::ListTagsForResource, "ListTagsForResource"),
    (
        Operation::DescribeImageGenerationConfiguration,
        "DescribeImageGenerationConfiguration",
    ),
    (
        Operation::UpdateImageGenerationConfiguration,
        "UpdateImageGenerationConfiguration",
    ),
    (
        Operation::DescribeNotificationConfiguration,
        "DescribeNotificationConfiguration",
    ),
    (
        Operation::UpdateNotificationConfiguration,
        "UpdateNotificationConfiguration",
    ),
    (
        Operation::DescribeStreamStorageConfiguration,
        "DescribeStreamStorageConfiguration",
    ),
    (
        Operation::UpdateStreamStorageConfiguration,
        "UpdateStreamStorageConfiguration",
    ),
    (
        Operation::DescribeMediaStorageConfiguration,
        "DescribeMediaStorageConfiguration",
    ),
    (
        Operation::UpdateMediaStorageConfiguration,
        "UpdateMediaStorageConfiguration",
    ),
    (
        Operation::DescribeMappedResourceConfiguration,
        "DescribeMappedResourceConfiguration",
    ),
    (
        Operation::StartEdgeConfigurationUpdate,
        "StartEdgeConfigurationUpdate",
    ),
    (
        Operation::DescribeEdgeConfiguration,
        "DescribeEdgeConfiguration",
    ),
    (
        Operation::DeleteEdgeConfiguration,
        "DeleteEdgeConfiguration",
    ),
    (
        Operation::ListEdgeAgentConfigurations,
        "ListEdgeAgentConfigurations",
    ),
    (Operation::CreateSignalingChannel, "CreateSignalingChannel"),
    (
        Operation::DescribeSignalingChannel,
        "DescribeSignalingChannel",
    ),
    (Operation::ListSignalingChannels, "ListSignalingChannels"),
    (Operation::UpdateSignalingChannel, "UpdateSignalingChannel"),
    (Operation::DeleteSignalingChannel, "DeleteSignalingChannel"),
    (
        Operation::GetSignalingChannelEndpoint,
        "GetSignalingChannelEndpoint",
    ),
    (Operation::PutMedia, "PutMedia"),
    (Operation::GetMedia, "GetMedia"),
    (Operation::JoinStorageSession, "JoinStorageSession"),
    (
        Operation::JoinStorageSessionAsViewer,
        "JoinStorageSessionAsViewer",
    ),
];

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn paths_are_unique_and_round_trip() {
        let mut paths: Vec<&str> = Operation::ALL.iter().map(|o| o.path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), Operation::ALL.len());
        for op in Operation::ALL {
            assert_eq!(Operation::from_path(op.path()), Some(op));
            assert_ne!(op.name(), "Unknown", "{op:?}");
        }
        assert_eq!(Operation::from_path("/tagResource"), None, "case matters");
        assert_eq!(
            Operation::from_path("/TagResource"),
            Some(Operation::TagResource)
        );
    }
}
