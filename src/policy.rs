//! TEMPORARY stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status { BurnIn, Adaptive }
impl Status { pub fn as_str(&self) -> &'static str { match self { Status::BurnIn => "burn_in", Status::Adaptive => "adaptive" } } }
pub fn target_weights(p_best: &[f64], _trials: &[u64], _min_trials: u64, _floor: f64) -> (Vec<f64>, Status) { (p_best.to_vec(), Status::Adaptive) }
pub fn limit_step(_previous: &[f64], target: &[f64], _max_step: f64) -> Vec<f64> { target.to_vec() }
