//! Which checkpoint a cluster resumes from: a one-shot dataflow in which every process says
//! which checkpoint ticks it can resume from, and every worker learns the newest tick all of
//! them can. Each process keeps its own checkpoint files, so no process can tell alone.

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe, ToStream};

/// The newest tick in every one of `lists` (`None`: none is in all, or there are no lists).
pub fn newest_in_all(lists: &[Vec<u64>]) -> Option<u64> {
    let (first, rest) = lists.split_first()?;
    first.iter().copied().filter(|t| rest.iter().all(|l| l.contains(t))).max()
}

/// Runs the cluster of `config` once: each worker sends `usable` (its process's resumable
/// ticks) to every worker, and all return the newest tick every worker sent.
pub fn newest_common(config: timely::Config, usable: Vec<u64>) -> Result<Option<u64>, String> {
    let guards = timely::execute(config, move |worker| {
        let heard: Rc<RefCell<Vec<Vec<u64>>>> = Rc::default();
        let sink = heard.clone();
        let mine = usable.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let (probe, _) = vec![mine]
                .to_stream(scope)
                .broadcast()
                .inspect(move |ticks: &Vec<u64>| sink.borrow_mut().push(ticks.clone()))
                .probe();
            probe
        });
        worker.step_while(|| !probe.done());
        let lists = heard.borrow();
        newest_in_all(&lists)
    })?;
    let answers: Vec<Option<u64>> = guards.join().into_iter().collect::<Result<_, _>>()?;
    Ok(answers.into_iter().next().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_tick_every_process_has_is_chosen() {
        assert_eq!(newest_in_all(&[vec![10, 20, 30], vec![20, 30, 40], vec![30, 20]]), Some(30));
        assert_eq!(newest_in_all(&[vec![10, 20], vec![30]]), None);
        assert_eq!(newest_in_all(&[vec![10], vec![]]), None, "a process with nothing");
        assert_eq!(newest_in_all(&[]), None);
    }

    #[test]
    fn the_workers_of_one_process_agree_through_the_dataflow() {
        assert_eq!(newest_common(timely::Config::process(2), vec![5, 9]), Ok(Some(9)));
        assert_eq!(newest_common(timely::Config::process(1), vec![]), Ok(None));
    }
}
