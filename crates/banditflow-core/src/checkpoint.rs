//! The checkpoint format: everything a live worker needs to resume exactly at a complete,
//! published tick, as bytes with a versioned header and a checksum.
//!
//! Layout: the magic `BFCKPT`, the format version (u16, little endian), the payload's length
//! (u64), the payload (bincode 2, standard configuration), and the CRC-32 of the payload
//! (u32). A file that is shorter, longer, of another version, or whose checksum does not
//! match is refused with the reason, never half read.

use crate::admission::AdmissionState;
use crate::attribution::AttributionState;
use crate::weights::WeigherState;
use crate::window::Departure;

/// The first bytes of every checkpoint.
pub const MAGIC: &[u8; 6] = b"BFCKPT";
/// The layout this build writes and reads.
pub const FORMAT_VERSION: u16 = 6;
/// Magic, version and length.
const HEADER_BYTES: usize = MAGIC.len() + 2 + 8;

/// What the job looked like when the checkpoint was written: a restart under another
/// timing (tick, window, attribution, lateness) cannot use it.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct JobTiming {
    /// `tick`, ms.
    pub tick_ms: u64,
    /// `window`, ms.
    pub window_ms: u64,
    /// `attribution`, ms.
    pub attribution_ms: u64,
    /// `allowed_lateness`, ms.
    pub allowed_lateness_ms: u64,
}

/// One worker's attribution: its state machine and the departures it scheduled.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AttributionPart {
    /// Pending assignments, waiting outcomes, registry, names.
    pub state: AttributionState,
    /// `(leave tick, entity, arm, served, trials, successes)`, negative counts.
    pub departures: Vec<Departure>,
}

/// Where an input partition resumes.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PartitionPosition {
    /// The topic's name.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset to read: every message before it was emitted at a tick before the
    /// checkpoint's.
    pub offset: i64,
    /// The largest event time the partition had delivered (its watermark before lateness).
    pub max_ts: i64,
}

/// Everything needed to resume at `tick`.
#[derive(Clone, Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Checkpoint {
    /// Every tick before this one is complete, and its records acknowledged by every sink.
    pub tick: u64,
    /// The job's timing.
    pub timing: JobTiming,
    /// The timely workers of the run that wrote it (all processes).
    pub workers: u32,
    /// Which process wrote it: each process of a cluster writes its own workers' parts.
    pub process: u32,
    /// The processes of the run that wrote it (1: a single process wrote every part).
    pub processes: u32,
    /// Each worker's attribution, by worker index.
    pub attribution: Vec<AttributionPart>,
    /// Each worker's weight state, by worker index.
    pub weighers: Vec<WeigherState>,
    /// Admission's replica (the same on every worker, so in every process's file).
    pub admission: Option<AdmissionState>,
    /// Where every input partition resumes.
    pub partitions: Vec<PartitionPosition>,
    /// Per partition of the weights topic, an offset at or before the first record of any
    /// tick at or after `tick`: a restart reads the topic from there to learn what went out
    /// after the checkpoint.
    pub weights_offsets: Vec<(i32, i64)>,
    /// The same for the decisions topic (empty without one).
    pub decisions_offsets: Vec<(i32, i64)>,
    /// Wall-clock ms when it was written.
    pub written_ms: i64,
}

impl Checkpoint {
    /// The checkpoint of the whole cluster at one tick from the files of its processes (one
    /// each, any order): every part, every partition's position, the weights offsets (which
    /// only the publishing process records). `None` if they are not all of one tick.
    pub fn merge(parts: Vec<Checkpoint>) -> Option<Checkpoint> {
        let mut parts = parts.into_iter();
        let mut whole = parts.next()?;
        for part in parts {
            if part.tick != whole.tick || part.timing != whole.timing || part.workers != whole.workers {
                return None;
            }
            whole.attribution.extend(part.attribution);
            whole.weighers.extend(part.weighers);
            whole.admission = whole.admission.or(part.admission);
            whole.partitions.extend(part.partitions);
            whole.weights_offsets.extend(part.weights_offsets);
            whole.decisions_offsets.extend(part.decisions_offsets);
            whole.written_ms = whole.written_ms.max(part.written_ms);
            whole.process = whole.process.min(part.process);
        }
        Some(whole)
    }
}

/// Why bytes are not a usable checkpoint.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Fewer bytes than a header.
    #[error("truncated: {0} bytes, shorter than the header")]
    TooShort(usize),
    /// Not a checkpoint at all.
    #[error("not a banditflow checkpoint (bad magic)")]
    BadMagic,
    /// Written by a build with another layout.
    #[error("format version {0}, this build reads version {FORMAT_VERSION}")]
    Version(u16),
    /// The length in the header does not match the file.
    #[error("truncated or padded: the header announces {announced} payload bytes, the file has {found}")]
    Length {
        /// From the header.
        announced: u64,
        /// Payload bytes present.
        found: u64,
    },
    /// The payload is not what was written.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// From the file.
        stored: u32,
        /// Of the payload read.
        computed: u32,
    },
    /// The payload does not decode (a checksum collision, or a bug).
    #[error("payload does not decode: {0}")]
    Decode(String),
}

/// The checkpoint as bytes.
pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    // Vectors, integers and strings: encoding into memory cannot fail.
    frame(&bincode::encode_to_vec(checkpoint, bincode::config::standard()).unwrap_or_default())
}

/// `payload` in a checkpoint file's frame: magic, format version, length, payload, checksum.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes
}

/// How many times its encoded size a checkpoint may claim in memory while it decodes. What
/// bincode claims is about the decoded size (a `u64` claims 8 bytes, written as 1 to 10); no
/// field of a checkpoint takes more than 16 times its encoding, so 64 refuses nothing real
/// and stops a damaged length prefix from claiming gigabytes.
const CLAIM_PER_BYTE: usize = 64;

/// Decodes a payload under a memory claim of [`CLAIM_PER_BYTE`] times its length, rounded up
/// to a power of 16 (bincode's limit is a constant: one decoder per step).
fn decode_payload(payload: &[u8]) -> Result<(Checkpoint, usize), bincode::error::DecodeError> {
    use bincode::config::standard;
    let claim = payload.len().saturating_mul(CLAIM_PER_BYTE);
    macro_rules! within {
        ($($bits:literal),*) => {
            $(if claim <= 1usize << $bits {
                return bincode::decode_from_slice(payload, standard().with_limit::<{ 1usize << $bits }>());
            })*
        };
    }
    within!(20, 24, 28, 32, 36, 40, 44);
    // Beyond 16 TiB: nothing this machine could hold anyway.
    Err(bincode::error::DecodeError::LimitExceeded)
}

/// The checkpoint in `bytes`, or why they are not one.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if bytes.len() < HEADER_BYTES + 4 {
        return Err(CheckpointError::TooShort(bytes.len()));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::Version(version));
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&bytes[8..16]);
    let announced = u64::from_le_bytes(length);
    let found = (bytes.len() - HEADER_BYTES - 4) as u64;
    if announced != found {
        return Err(CheckpointError::Length { announced, found });
    }
    let payload = &bytes[HEADER_BYTES..bytes.len() - 4];
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[bytes.len() - 4..]);
    let stored = u32::from_le_bytes(crc);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(CheckpointError::Checksum { stored, computed });
    }
    let (checkpoint, used) = decode_payload(payload).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(CheckpointError::Decode(format!("{} bytes left over", payload.len() - used)));
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AssignmentKey;

    fn checkpoint() -> Checkpoint {
        let state = AttributionState {
            settled: 42,
            pending: vec![(AssignmentKey(1, 2), 41_500, 7, 9)],
            outcomes: vec![(AssignmentKey(1, 2), vec![41_600, 41_700])],
            names: vec![(7, "hero".into()), (9, "model-b".into())],
            ..AttributionState::default()
        };
        Checkpoint {
            tick: 42,
            timing: JobTiming { tick_ms: 1_000, window_ms: 600_000, attribution_ms: 5_000, allowed_lateness_ms: 100 },
            workers: 2,
            process: 0,
            processes: 1,
            attribution: vec![AttributionPart { state, departures: vec![(80, 7, 9, crate::attribution::Served { version: 41_000, tick: 41 }, -3, -1)] }, AttributionPart::default()],
            weighers: vec![WeigherState { next_tick: 42, converging: vec![7], ..WeigherState::default() }, WeigherState::default()],
            admission: Some(AdmissionState { pairs: vec![(7, 9, 40, false), (7, 11, 12, true)], decided: 42 }),
            partitions: vec![PartitionPosition { topic: "assignments".into(), partition: 3, offset: 1_234, max_ts: 41_999 }],
            weights_offsets: vec![(0, 77)],
            decisions_offsets: vec![(0, 5)],
            written_ms: 1_767_225_600_000,
        }
    }

    #[test]
    fn the_parts_of_a_cluster_merge_into_one_checkpoint_of_the_same_tick() {
        let (mut first, mut second) = (checkpoint(), checkpoint());
        first.processes = 2;
        (second.process, second.processes, second.weights_offsets) = (1, 2, Vec::new());
        second.partitions[0].partition = 4;
        let whole = Checkpoint::merge(vec![second.clone(), first.clone()]).expect("one tick");
        assert_eq!((whole.attribution.len(), whole.weighers.len(), whole.partitions.len()), (4, 4, 2));
        assert_eq!((whole.process, whole.weights_offsets), (0, vec![(0, 77)]));
        second.tick = 43;
        assert_eq!(Checkpoint::merge(vec![first, second]), None, "parts of two ticks");
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let bytes = encode(&checkpoint());
        assert_eq!(&bytes[..6], MAGIC);
        assert_eq!(decode(&bytes), Ok(checkpoint()));
    }

    #[test]
    fn truncated_flipped_or_foreign_bytes_are_refused_with_the_reason() {
        let bytes = encode(&checkpoint());
        assert_eq!(decode(&bytes[..10]), Err(CheckpointError::TooShort(10)));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(CheckpointError::Length { .. })));
        for at in [HEADER_BYTES, bytes.len() / 2, bytes.len() - 5, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(matches!(decode(&flipped), Err(CheckpointError::Checksum { .. })), "a flipped byte at {at} went unnoticed");
        }
        let mut other = bytes;
        other[6] = 9;
        assert_eq!(decode(&other), Err(CheckpointError::Version(9)));
        assert_eq!(decode(b"{\"not\":\"a checkpoint at all\"}"), Err(CheckpointError::BadMagic));
    }

    #[test]
    fn a_length_prefix_claiming_more_than_the_payload_could_hold_is_refused_not_allocated() {
        // Found by `scripts/fuzz.sh checkpoint` (out of memory): 13 bytes whose length prefix
        // claims a container of billions of entries, framed with a right checksum. The decoder
        // asked for the memory before reading a single entry.
        let payload = [0xcd, 0xcd, 0xcd, 0xd8, 0xcd, 0xcd, 0xcd, 0xcd, 0xfc, 0xbe, 0x70, 0x70, 0x70];
        match decode(&frame(&payload)) {
            Err(CheckpointError::Decode(message)) => assert!(message.to_lowercase().contains("limit"), "{message}"),
            other => panic!("expected a decode error, got {other:?}"),
        }
        // A real checkpoint still decodes, whatever its size step.
        let real = checkpoint();
        assert_eq!(decode(&encode(&real)).expect("decodes"), real);
    }
}
