//! A forward dataflow framework over [`crate::cfg`]: an analysis says what a state is, how
//! an item and an edge change it and how two states meet; [`solve`] iterates to the fixed
//! point with a worklist, and [`visit`] / [`exits`] read the result.
//!
//! Blocks nothing reaches have no state at all (`None`), so `join` only ever meets states of
//! paths that exist: a "may" analysis joins by union, a "must" analysis by intersection, and
//! neither needs a top element.

use std::collections::VecDeque;

use crate::cfg::{Cfg, Edge, Exit, Item};

pub trait Analysis<'t> {
    type State: Clone + PartialEq;

    /// The effect of one item on the state.
    fn apply(&self, item: Item<'t>, state: &mut Self::State);

    /// The effect of following an edge (default: none). An analysis that knows an edge cannot
    /// be taken in some state removes that state here.
    fn edge(&self, _edge: Edge<'t>, _state: &mut Self::State) {}

    /// Meets `other` into `into` where two paths join.
    fn join(&self, into: &mut Self::State, other: &Self::State);
}

/// The state at the start of each block, `None` where no path reaches.
pub struct Solution<S> {
    pub ins: Vec<Option<S>>,
}

/// Runs `analysis` from `entry` to its fixed point.
pub fn solve<'t, A: Analysis<'t>>(
    cfg: &Cfg<'t>,
    analysis: &A,
    entry: A::State,
) -> Solution<A::State> {
    let n = cfg.blocks.len();
    let mut ins: Vec<Option<A::State>> = vec![None; n];
    ins[0] = Some(entry);
    let mut queued = vec![false; n];
    let mut work = VecDeque::from([0]);
    queued[0] = true;
    // Every lattice here is finite and every transfer monotone, so this ends; the bound only
    // guards against an analysis that is not (it then answers with what it has).
    let mut budget = 64 * n + 64;
    while let Some(b) = work.pop_front() {
        queued[b] = false;
        budget = budget.saturating_sub(1);
        if budget == 0 {
            debug_assert!(false, "dataflow did not converge");
            break;
        }
        let Some(mut state) = ins[b].clone() else {
            continue;
        };
        for item in &cfg.blocks[b].items {
            analysis.apply(*item, &mut state);
        }
        for &(succ, edge) in &cfg.blocks[b].succs {
            let mut out = state.clone();
            analysis.edge(edge, &mut out);
            let changed = match &mut ins[succ] {
                slot @ None => {
                    *slot = Some(out);
                    true
                }
                Some(old) => {
                    let before = old.clone();
                    analysis.join(old, &out);
                    *old != before
                }
            };
            if changed && !queued[succ] {
                queued[succ] = true;
                work.push_back(succ);
            }
        }
    }
    Solution { ins }
}

/// Calls `f` with every item of every reached block and the state just before it.
pub fn visit<'t, A: Analysis<'t>>(
    cfg: &Cfg<'t>,
    analysis: &A,
    solution: &Solution<A::State>,
    mut f: impl FnMut(Item<'t>, &A::State),
) {
    for (b, block) in cfg.blocks.iter().enumerate() {
        let Some(mut state) = solution.ins[b].clone() else {
            continue;
        };
        for item in &block.items {
            f(*item, &state);
            analysis.apply(*item, &mut state);
        }
    }
}

/// The reached ways out of the region with the state on leaving, in source order.
pub fn exits<'t, A: Analysis<'t>>(
    cfg: &Cfg<'t>,
    analysis: &A,
    solution: &Solution<A::State>,
) -> Vec<(Exit<'t>, A::State)> {
    let mut out = Vec::new();
    for (b, block) in cfg.blocks.iter().enumerate() {
        let (Some(exit), Some(mut state)) = (block.exit, solution.ins[b].clone()) else {
            continue;
        };
        for item in &block.items {
            analysis.apply(*item, &mut state);
        }
        out.push((exit, state));
    }
    out.sort_by_key(|(e, _)| e.node().start_byte());
    out
}
