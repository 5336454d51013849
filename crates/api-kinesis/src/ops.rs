//! The operations of the `kinesis` service model (API 2013-12-02), one enum variant each,
//! named by `X-Amz-Target: Kinesis_20131202.<Operation>`. [`crate::service`] dispatches with
//! one exhaustive `match`; the operations Vigil does not implement answer a clear error
//! (docs/compatibility.md lists them).

/// A Kinesis Data Streams operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Operation {
    AddTagsToStream,
    CreateStream,
    DecreaseStreamRetentionPeriod,
    DeleteResourcePolicy,
    DeleteStream,
    DeregisterStreamConsumer,
    DescribeAccountSettings,
    DescribeLimits,
    DescribeStream,
    DescribeStreamConsumer,
    DescribeStreamSummary,
    DisableEnhancedMonitoring,
    EnableEnhancedMonitoring,
    GetRecords,
    GetResourcePolicy,
    GetShardIterator,
    IncreaseStreamRetentionPeriod,
    ListShards,
    ListStreamConsumers,
    ListStreams,
    ListTagsForResource,
    ListTagsForStream,
    MergeShards,
    PutRecord,
    PutRecords,
    PutResourcePolicy,
    RegisterStreamConsumer,
    RemoveTagsFromStream,
    SplitShard,
    StartStreamEncryption,
    StopStreamEncryption,
    SubscribeToShard,
    TagResource,
    UntagResource,
    UpdateAccountSettings,
    UpdateMaxRecordSize,
    UpdateShardCount,
    UpdateStreamMode,
    UpdateStreamWarmThroughput,
}

impl Operation {
    /// Every operation of the model.
    pub const ALL: [Operation; 39] = [
        Self::AddTagsToStream,
        Self::CreateStream,
        Self::DecreaseStreamRetentionPeriod,
        Self::DeleteResourcePolicy,
        Self::DeleteStream,
        Self::DeregisterStreamConsumer,
        Self::DescribeAccountSettings,
        Self::DescribeLimits,
        Self::DescribeStream,
        Self::DescribeStreamConsumer,
        Self::DescribeStreamSummary,
        Self::DisableEnhancedMonitoring,
        Self::EnableEnhancedMonitoring,
        Self::GetRecords,
        Self::GetResourcePolicy,
        Self::GetShardIterator,
        Self::IncreaseStreamRetentionPeriod,
        Self::ListShards,
        Self::ListStreamConsumers,
        Self::ListStreams,
        Self::ListTagsForResource,
        Self::ListTagsForStream,
        Self::MergeShards,
        Self::PutRecord,
        Self::PutRecords,
        Self::PutResourcePolicy,
        Self::RegisterStreamConsumer,
        Self::RemoveTagsFromStream,
        Self::SplitShard,
        Self::StartStreamEncryption,
        Self::StopStreamEncryption,
        Self::SubscribeToShard,
        Self::TagResource,
        Self::UntagResource,
        Self::UpdateAccountSettings,
        Self::UpdateMaxRecordSize,
        Self::UpdateShardCount,
        Self::UpdateStreamMode,
        Self::UpdateStreamWarmThroughput,
    ];

    /// The AWS name (`PutRecord`), as in `X-Amz-Target` and IAM.
    pub fn name(self) -> &'static str {
        match self {
            Self::AddTagsToStream => "AddTagsToStream",
            Self::CreateStream => "CreateStream",
            Self::DecreaseStreamRetentionPeriod => "DecreaseStreamRetentionPeriod",
            Self::DeleteResourcePolicy => "DeleteResourcePolicy",
            Self::DeleteStream => "DeleteStream",
            Self::DeregisterStreamConsumer => "DeregisterStreamConsumer",
            Self::DescribeAccountSettings => "DescribeAccountSettings",
            Self::DescribeLimits => "DescribeLimits",
            Self::DescribeStream => "DescribeStream",
            Self::DescribeStreamConsumer => "DescribeStreamConsumer",
            Self::DescribeStreamSummary => "DescribeStreamSummary",
            Self::DisableEnhancedMonitoring => "DisableEnhancedMonitoring",
            Self::EnableEnhancedMonitoring => "EnableEnhancedMonitoring",
            Self::GetRecords => "GetRecords",
            Self::GetResourcePolicy => "GetResourcePolicy",
            Self::GetShardIterator => "GetShardIterator",
            Self::IncreaseStreamRetentionPeriod => "IncreaseStreamRetentionPeriod",
            Self::ListShards => "ListShards",
            Self::ListStreamConsumers => "ListStreamConsumers",
            Self::ListStreams => "ListStreams",
            Self::ListTagsForResource => "ListTagsForResource",
            Self::ListTagsForStream => "ListTagsForStream",
            Self::MergeShards => "MergeShards",
            Self::PutRecord => "PutRecord",
            Self::PutRecords => "PutRecords",
            Self::PutResourcePolicy => "PutResourcePolicy",
            Self::RegisterStreamConsumer => "RegisterStreamConsumer",
            Self::RemoveTagsFromStream => "RemoveTagsFromStream",
            Self::SplitShard => "SplitShard",
            Self::StartStreamEncryption => "StartStreamEncryption",
            Self::StopStreamEncryption => "StopStreamEncryption",
            Self::SubscribeToShard => "SubscribeToShard",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::UpdateAccountSettings => "UpdateAccountSettings",
            Self::UpdateMaxRecordSize => "UpdateMaxRecordSize",
            Self::UpdateShardCount => "UpdateShardCount",
            Self::UpdateStreamMode => "UpdateStreamMode",
            Self::UpdateStreamWarmThroughput => "UpdateStreamWarmThroughput",
        }
    }

    /// The operation named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The action key policies name (`kinesis:PutRecord`).
    pub fn action(self) -> String {
        format!("{}{}", vigil_auth::policy::KINESIS_PREFIX, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(op.action(), format!("kinesis:{}", op.name()));
        }
        assert_eq!(Operation::from_name("putRecord"), None);
    }
}
