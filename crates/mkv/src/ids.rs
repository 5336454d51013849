//! Element IDs, with their marker bits, as the Matroska specification
//! (RFC 9559, section 5.1) and the EBML specification (RFC 8794, section 11.2) number them.

/// EBML header (RFC 8794 §11.2.1).
pub const EBML: u32 = 0x1A45_DFA3;
pub const EBML_VERSION: u32 = 0x4286;
pub const EBML_READ_VERSION: u32 = 0x42F7;
pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
pub const DOC_TYPE: u32 = 0x4282;
pub const DOC_TYPE_VERSION: u32 = 0x4287;
pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;

/// Global elements, valid at any level (RFC 8794 §11.3).
pub const VOID: u32 = 0xEC;
pub const CRC32: u32 = 0xBF;

pub const SEGMENT: u32 = 0x1853_8067;

// Level 1.
pub const SEEK_HEAD: u32 = 0x114D_9B74;
pub const INFO: u32 = 0x1549_A966;
pub const TRACKS: u32 = 0x1654_AE6B;
pub const CLUSTER: u32 = 0x1F43_B675;
pub const CUES: u32 = 0x1C53_BB6B;
pub const ATTACHMENTS: u32 = 0x1941_A469;
pub const CHAPTERS: u32 = 0x1043_A770;
pub const TAGS: u32 = 0x1254_C367;

// Info children.
pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
pub const SEGMENT_UUID: u32 = 0x73A4;
pub const TITLE: u32 = 0x7BA9;
pub const MUXING_APP: u32 = 0x4D80;
pub const WRITING_APP: u32 = 0x5741;
pub const DURATION: u32 = 0x4489;
pub const DATE_UTC: u32 = 0x4461;

// Tracks children.
pub const TRACK_ENTRY: u32 = 0xAE;
pub const TRACK_NUMBER: u32 = 0xD7;
pub const TRACK_UID: u32 = 0x73C5;
pub const TRACK_TYPE: u32 = 0x83;
pub const FLAG_LACING: u32 = 0x9C;
pub const CODEC_ID: u32 = 0x86;
pub const CODEC_PRIVATE: u32 = 0x63A2;
pub const CODEC_NAME: u32 = 0x25_8688;
pub const NAME: u32 = 0x536E;
pub const LANGUAGE: u32 = 0x22_B59C;
pub const DEFAULT_DURATION: u32 = 0x23_E383;
pub const CODEC_DELAY: u32 = 0x56AA;
pub const SEEK_PRE_ROLL: u32 = 0x56BB;
pub const VIDEO: u32 = 0xE0;
pub const PIXEL_WIDTH: u32 = 0xB0;
pub const PIXEL_HEIGHT: u32 = 0xBA;
pub const DISPLAY_WIDTH: u32 = 0x54B0;
pub const DISPLAY_HEIGHT: u32 = 0x54BA;
pub const AUDIO: u32 = 0xE1;
pub const SAMPLING_FREQUENCY: u32 = 0xB5;
pub const OUTPUT_SAMPLING_FREQUENCY: u32 = 0x78B5;
pub const CHANNELS: u32 = 0x9F;
pub const BIT_DEPTH: u32 = 0x6264;
pub const CONTENT_ENCODINGS: u32 = 0x6D80;
pub const CONTENT_ENCODING: u32 = 0x6240;
pub const CONTENT_ENCODING_SCOPE: u32 = 0x5032;
pub const CONTENT_ENCODING_TYPE: u32 = 0x5033;
pub const CONTENT_COMPRESSION: u32 = 0x5034;
pub const CONTENT_COMP_ALGO: u32 = 0x4254;
pub const CONTENT_COMP_SETTINGS: u32 = 0x4255;

// Cluster children.
pub const TIMESTAMP: u32 = 0xE7;
pub const POSITION: u32 = 0xA7;
pub const PREV_SIZE: u32 = 0xAB;
pub const SIMPLE_BLOCK: u32 = 0xA3;
pub const BLOCK_GROUP: u32 = 0xA0;
pub const BLOCK: u32 = 0xA1;
pub const BLOCK_DURATION: u32 = 0x9B;
pub const REFERENCE_BLOCK: u32 = 0xFB;
pub const REFERENCE_PRIORITY: u32 = 0xFA;
pub const DISCARD_PADDING: u32 = 0x75A2;
pub const BLOCK_ADDITIONS: u32 = 0x75A1;

// Tags children.
pub const TAG: u32 = 0x7373;
pub const TARGETS: u32 = 0x63C0;
pub const TARGET_TYPE_VALUE: u32 = 0x68CA;
pub const TARGET_TYPE: u32 = 0x63CA;
pub const TAG_TRACK_UID: u32 = 0x63C5;
pub const SIMPLE_TAG: u32 = 0x67C8;
pub const TAG_NAME: u32 = 0x45A3;
pub const TAG_LANGUAGE: u32 = 0x447A;
pub const TAG_DEFAULT: u32 = 0x4484;
pub const TAG_STRING: u32 = 0x4487;
pub const TAG_BINARY: u32 = 0x4485;

/// Whether `id` is one of the Segment's children (level 1). An unknown-size Cluster ends where
/// one of these starts (RFC 9559 §6.2 and RFC 8794 §6.2).
pub fn is_level1(id: u32) -> bool {
    matches!(
        id,
        SEEK_HEAD | INFO | TRACKS | CLUSTER | CUES | ATTACHMENTS | CHAPTERS | TAGS
    )
}

/// The specification's name of an element, for messages and `vigil inspect`.
pub fn name(id: u32) -> Option<&'static str> {
    Some(match id {
        EBML => "EBML",
        EBML_VERSION => "EBMLVersion",
        EBML_READ_VERSION => "EBMLReadVersion",
        EBML_MAX_ID_LENGTH => "EBMLMaxIDLength",
        EBML_MAX_SIZE_LENGTH => "EBMLMaxSizeLength",
        DOC_TYPE => "DocType",
        DOC_TYPE_VERSION => "DocTypeVersion",
        DOC_TYPE_READ_VERSION => "DocTypeReadVersion",
        VOID => "Void",
        CRC32 => "CRC-32",
        SEGMENT => "Segment",
        SEEK_HEAD => "SeekHead",
        INFO => "Info",
        TRACKS => "Tracks",
        CLUSTER => "Cluster",
        CUES => "Cues",
        ATTACHMENTS => "Attachments",
        CHAPTERS => "Chapters",
        TAGS => "Tags",
        TIMESTAMP_SCALE => "TimestampScale",
        SEGMENT_UUID => "SegmentUUID",
        TITLE => "Title",
        MUXING_APP => "MuxingApp",
        WRITING_APP => "WritingApp",
        DURATION => "Duration",
        DATE_UTC => "DateUTC",
        TRACK_ENTRY => "TrackEntry",
        TRACK_NUMBER => "TrackNumber",
        TRACK_UID => "TrackUID",
        TRACK_TYPE => "TrackType",
        FLAG_LACING => "FlagLacing",
        CODEC_ID => "CodecID",
        CODEC_PRIVATE => "CodecPrivate",
        CODEC_NAME => "CodecName",
        NAME => "Name",
        LANGUAGE => "Language",
        DEFAULT_DURATION => "DefaultDuration",
        CODEC_DELAY => "CodecDelay",
        SEEK_PRE_ROLL => "SeekPreRoll",
        VIDEO => "Video",
        PIXEL_WIDTH => "PixelWidth",
        PIXEL_HEIGHT => "PixelHeight",
        DISPLAY_WIDTH => "DisplayWidth",
        DISPLAY_HEIGHT => "DisplayHeight",
        AUDIO => "Audio",
        SAMPLING_FREQUENCY => "SamplingFrequency",
        OUTPUT_SAMPLING_FREQUENCY => "OutputSamplingFrequency",
        CHANNELS => "Channels",
        BIT_DEPTH => "BitDepth",
        CONTENT_ENCODINGS => "ContentEncodings",
        CONTENT_ENCODING => "ContentEncoding",
        CONTENT_ENCODING_SCOPE => "ContentEncodingScope",
        CONTENT_ENCODING_TYPE => "ContentEncodingType",
        CONTENT_COMPRESSION => "ContentCompression",
        CONTENT_COMP_ALGO => "ContentCompAlgo",
        CONTENT_COMP_SETTINGS => "ContentCompSettings",
        TIMESTAMP => "Timestamp",
        POSITION => "Position",
        PREV_SIZE => "PrevSize",
        SIMPLE_BLOCK => "SimpleBlock",
        BLOCK_GROUP => "BlockGroup",
        BLOCK => "Block",
        BLOCK_DURATION => "BlockDuration",
        REFERENCE_BLOCK => "ReferenceBlock",
        REFERENCE_PRIORITY => "ReferencePriority",
        DISCARD_PADDING => "DiscardPadding",
        BLOCK_ADDITIONS => "BlockAdditions",
        TAG => "Tag",
        TARGETS => "Targets",
        TARGET_TYPE_VALUE => "TargetTypeValue",
        TARGET_TYPE => "TargetType",
        TAG_TRACK_UID => "TagTrackUID",
        SIMPLE_TAG => "SimpleTag",
        TAG_NAME => "TagName",
        TAG_LANGUAGE => "TagLanguage",
        TAG_DEFAULT => "TagDefault",
        TAG_STRING => "TagString",
        TAG_BINARY => "TagBinary",
        _ => return None,
    })
}

/// `0x1F43B675 (Cluster)`, or just the hex for an ID the crate does not name.
pub fn describe(id: u32) -> String {
    match name(id) {
        Some(n) => format!("{id:#X} ({n})"),
        None => format!("{id:#X}"),
    }
}
