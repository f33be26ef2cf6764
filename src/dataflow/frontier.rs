//! Frontier arithmetic shared by the operators.

/// The first tick not complete at every one of an operator's inputs (`None`: all done).
pub fn first_open_tick(inputs: &[&timely::progress::frontier::MutableAntichain<u64>]) -> Option<u64> {
    inputs.iter().filter_map(|f| f.frontier().iter().next().copied()).min()
}

