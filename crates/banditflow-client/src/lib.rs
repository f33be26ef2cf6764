//! The serving side of banditflow: read the weight records into memory, and assign traffic
//! by them with no I/O on the request path. It depends on `banditflow-core` alone (no
//! timely, no differential); the followers that fill the cache from Redis or the weights
//! topic are behind the `redis` and `kafka` features.
//!
//! ```
//! use std::sync::Arc;
//! use banditflow_client::{parse_record, Assigner, Defaults, WeightsCache};
//!
//! // One cache per weights stream; a follower (feature `redis` or `kafka`) offers it every
//! // record it reads. Here, one record by hand.
//! let cache = Arc::new(WeightsCache::new());
//! let json = br#"{"entity_id":"hero","version":1000,"as_of":1000,"computed_at":1000,"status":"adaptive",
//!   "arms":[{"arm_id":"a","weight":0.25,"p_best":0.2,"alpha":3,"beta":9,"trials":10,"successes":2,"mean":0.25,
//!            "ci95":[0.05,0.5],"expected_loss":0.1,"vs_control":null,"state":"exploring"},
//!           {"arm_id":"b","weight":0.75,"p_best":0.8,"alpha":6,"beta":6,"trials":10,"successes":5,"mean":0.5,
//!            "ci95":[0.2,0.8],"expected_loss":0.01,"vs_control":null,"state":"exploring"}],
//!   "chi_square":{"statistic":0,"dof":1,"p_value":1},
//!   "srm":{"statistic":0,"dof":1,"p_value":1,"flagged":false,"matched":0,"unmatched":0},
//!   "max_age_hint_ms":5000,"dataflow":"d","schema_version":3}"#;
//! cache.offer(parse_record(json)?);
//! let assigner = Assigner::new(cache, Defaults::new(30_000));
//! let served = assigner.assign_at("hero", "user-1", 2_000)?;
//! assert_eq!(served.weights_version, Some(1000));
//! assert!(served.arm_id == "a" || served.arm_id == "b");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod assign;
pub mod bucket;
pub mod cache;
pub mod follow;
pub mod growthbook;
#[cfg(feature = "kafka")]
pub mod produce;
pub mod record;
pub mod sticky;

pub use assign::{AssignError, Assigner, Assignment, Defaults, Fallback, ServingMetrics, Split};
pub use cache::{Offered, WeightsCache};
pub use follow::{Following, Progress};
pub use record::{parse_record, ArmState, ArmWeight, ChiSquare, ParseError, SampleRatio, Status, VersusControl, WeightRecord, SCHEMA_VERSION};
pub use sticky::{MemorySticky, StickyStore};
#[cfg(feature = "redis")]
pub use sticky::RedisSticky;
