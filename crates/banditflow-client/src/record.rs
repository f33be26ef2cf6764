//! The weight record as serving reads it from Redis or the weights topic
//! (`schemas/weights.schema.json`), and the types it is made of.

pub use banditflow_core::decision::ArmState;
pub use banditflow_core::policy::Status;
pub use banditflow_core::record::{ArmWeight, WeightRecord, SCHEMA_VERSION};
pub use banditflow_core::srm::SampleRatio;
pub use banditflow_core::statistics::{ChiSquare, VersusControl};

/// Why a weight record could not be read.
pub type ParseError = serde_json::Error;

/// Reads a weight record as serving receives it (a Redis value or a Kafka message payload).
pub fn parse_record(json: &[u8]) -> Result<WeightRecord, ParseError> {
    serde_json::from_slice(json)
}
