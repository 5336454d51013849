//! The archived-media operations (`kinesis-video-archived-media`), routed by path
//! (`../shared/spec/kvs-api.md` §1.3). One enum variant per AWS operation; [`crate::service`]
//! dispatches with one exhaustive `match`.

/// An archived-media operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Operation {
    ListFragments,
    GetMediaForFragmentList,
    GetHLSStreamingSessionURL,
    GetDASHStreamingSessionURL,
    GetClip,
    GetImages,
}

impl vigil_api_kvs_common::Operation for Operation {
    fn name(self) -> &'static str {
        Operation::name(self)
    }
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 6] = [
        Self::ListFragments,
        Self::GetMediaForFragmentList,
        Self::GetHLSStreamingSessionURL,
        Self::GetDASHStreamingSessionURL,
        Self::GetClip,
        Self::GetImages,
    ];

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Self::ListFragments => "/listFragments",
            Self::GetMediaForFragmentList => "/getMediaForFragmentList",
            Self::GetHLSStreamingSessionURL => "/getHLSStreamingSessionURL",
            Self::GetDASHStreamingSessionURL => "/getDASHStreamingSessionURL",
            Self::GetClip => "/getClip",
            Self::GetImages => "/getImages",
        }
    }

    /// The operation at `path` (exact, case-sensitive, as the SDKs send it).
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.path() == path)
    }

    /// The AWS name, as in IAM actions and key policies (`kinesisvideo:GetClip`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ListFragments => "ListFragments",
            Self::GetMediaForFragmentList => "GetMediaForFragmentList",
            Self::GetHLSStreamingSessionURL => "GetHLSStreamingSessionURL",
            Self::GetDASHStreamingSessionURL => "GetDASHStreamingSessionURL",
            Self::GetClip => "GetClip",
            Self::GetImages => "GetImages",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn paths_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_path(op.path()), Some(op));
            assert_eq!(
                op.path().get(1..2).map(str::to_uppercase).as_deref(),
                op.name().get(..1)
            );
        }
        assert_eq!(Operation::from_path("/getclip"), None, "case matters");
    }
}
