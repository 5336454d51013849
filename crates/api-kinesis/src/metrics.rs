//! What the Kinesis API adds to the metrics (`/metrics`), per data stream.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_kinesis_records_in_total` | counter | `stream` | records put (durable) |
//! | `vigil_kinesis_bytes_in_total` | counter | `stream` | their data and partition key bytes |
//! | `vigil_kinesis_records_out_total` | counter | `stream` | records GetRecords returned |
//! | `vigil_kinesis_bytes_out_total` | counter | `stream` | their data and partition key bytes |
//! | `vigil_kinesis_put_failures_total` | counter | `stream` | records whose put failed (PutRecords entries with an `ErrorCode`, failed PutRecord calls) |
//! | `vigil_kinesis_iterator_age_milliseconds` | gauge | `stream` | `MillisBehindLatest` of the stream's latest GetRecords: how far its readers lag |

use std::sync::Once;

use vigil_api_common::metrics::{CounterVec, Family, GaugeVec, global};

/// The Kinesis API's families.
#[derive(Debug)]
pub struct KinesisMetrics {
    /// Records put, per stream.
    pub records_in: CounterVec,
    /// Bytes put, per stream.
    pub bytes_in: CounterVec,
    /// Records read, per stream.
    pub records_out: CounterVec,
    /// Bytes read, per stream.
    pub bytes_out: CounterVec,
    /// Records whose put failed, per stream.
    pub put_failures: CounterVec,
    /// The latest `MillisBehindLatest`, per stream.
    pub iterator_age_ms: GaugeVec,
}

impl Family for KinesisMetrics {
    fn render(&self, out: &mut String) {
        self.records_in.render(out);
        self.bytes_in.render(out);
        self.records_out.render(out);
        self.bytes_out.render(out);
        self.put_failures.render(out);
        self.iterator_age_ms.render(out);
    }
}

static METRICS: KinesisMetrics = KinesisMetrics {
    records_in: CounterVec::new(
        "vigil_kinesis_records_in_total",
        "Records put to data streams (durable).",
        &["stream"],
    ),
    bytes_in: CounterVec::new(
        "vigil_kinesis_bytes_in_total",
        "Data and partition key bytes of the records put.",
        &["stream"],
    ),
    records_out: CounterVec::new(
        "vigil_kinesis_records_out_total",
        "Records GetRecords returned.",
        &["stream"],
    ),
    bytes_out: CounterVec::new(
        "vigil_kinesis_bytes_out_total",
        "Data and partition key bytes of the records GetRecords returned.",
        &["stream"],
    ),
    put_failures: CounterVec::new(
        "vigil_kinesis_put_failures_total",
        "Records whose put failed.",
        &["stream"],
    ),
    iterator_age_ms: GaugeVec::new(
        "vigil_kinesis_iterator_age_milliseconds",
        "MillisBehindLatest of the stream's latest GetRecords.",
        &["stream"],
    ),
};

/// The families, added to the process's registry on first use.
pub fn metrics() -> &'static KinesisMetrics {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| global().register(&METRICS));
    &METRICS
}
