//! One correlation's timeline as a tree by causation: every event of a
//! request or a saga (read with [`crate::Client::read_correlation`], or
//! from `GET /v1/correlations/{id}`), each under the event that caused it.
//!
//! The tree is built in one pass over the events in global order: an
//! event whose `causationid` names an event earlier in the list is that
//! event's child; every other event (no cause, a cause outside the
//! correlation, such as the command that started it, or a cause recorded
//! later, which only a writer's mistake can produce) is a root. So a
//! parent always comes before its children, there can be no cycle, and
//! every event appears exactly once. Nodes refer to each other by index
//! rather than owning their children, so a causal chain of any length is
//! walked and dropped without recursion.
//!
//! ```
//! use weir::timeline::{Caused, Timeline};
//! struct Ev(&'static str, Option<&'static str>);
//! impl Caused for Ev {
//!     fn event_id(&self) -> &str { self.0 }
//!     fn causation_id(&self) -> Option<&str> { self.1 }
//! }
//! let t = Timeline::new(vec![
//!     Ev("placed", Some("place-cmd")), // caused by a command outside the set: a root
//!     Ev("reserved", Some("placed")),
//!     Ev("charged", Some("reserved")),
//!     Ev("audit", None),
//!     Ev("shipped", Some("charged")),
//! ]);
//! let walk: Vec<(usize, &str)> = t.depth_first().map(|(d, n)| (d, n.event.0)).collect();
//! assert_eq!(walk, [(0, "placed"), (1, "reserved"), (2, "charged"), (3, "shipped"), (0, "audit")]);
//! ```

use std::collections::HashMap;

use crate::Envelope;

/// What the tree needs of an event: its id and the id of what caused it.
pub trait Caused {
    fn event_id(&self) -> &str;
    fn causation_id(&self) -> Option<&str>;
}

impl Caused for Envelope {
    fn event_id(&self) -> &str {
        &self.id
    }

    fn causation_id(&self) -> Option<&str> {
        self.causationid.as_deref()
    }
}

/// An event of the HTTP API (its `causation_id` is read from the metadata
/// by the server).
impl Caused for weir_api::Event {
    fn event_id(&self) -> &str {
        &self.id
    }

    fn causation_id(&self) -> Option<&str> {
        self.causation_id.as_deref()
    }
}

/// One event in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<E> {
    pub event: E,
    /// The index of the event that caused this one, if it is in the tree.
    pub parent: Option<usize>,
    /// The indexes of the events this one caused, in global order.
    pub children: Vec<usize>,
    /// How many causes up to a root (a root is 0).
    pub depth: usize,
}

/// A correlation's events as a forest by causation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline<E = Envelope> {
    /// In the order given (global order, as read).
    nodes: Vec<Node<E>>,
    /// The indexes of the roots, in global order.
    roots: Vec<usize>,
}

impl<E: Caused> Timeline<E> {
    /// The tree of `events`, which are in global order.
    pub fn new(events: Vec<E>) -> Self {
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(events.len());
        let mut parents = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            parents.push(e.causation_id().and_then(|c| seen.get(c).copied()));
            // An id repeated (another stream's event with the same id)
            // keeps its first place.
            seen.entry(e.event_id()).or_insert(i);
        }
        drop(seen);
        let mut nodes: Vec<Node<E>> = events
            .into_iter()
            .zip(&parents)
            .map(|(event, &parent)| Node {
                event,
                parent,
                children: Vec::new(),
                depth: 0,
            })
            .collect();
        let mut roots = Vec::new();
        for (i, parent) in parents.into_iter().enumerate() {
            match parent {
                Some(p) => {
                    debug_assert!(p < i, "a parent comes before its children");
                    nodes[i].depth = nodes[p].depth + 1;
                    nodes[p].children.push(i);
                }
                None => roots.push(i),
            }
        }
        Self { nodes, roots }
    }

    /// Every node, in global order.
    pub fn nodes(&self) -> &[Node<E>] {
        &self.nodes
    }

    /// The indexes of the roots (events whose cause is not in the
    /// timeline), in global order.
    pub fn roots(&self) -> &[usize] {
        &self.roots
    }

    pub fn node(&self, index: usize) -> &Node<E> {
        &self.nodes[index]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node with its depth, depth first: a root, then what it caused
    /// (each subtree in global order), then the next root. This is the
    /// order `weir trace` prints.
    pub fn depth_first(&self) -> impl Iterator<Item = (usize, &Node<E>)> {
        let mut stack: Vec<usize> = self.roots.iter().rev().copied().collect();
        std::iter::from_fn(move || {
            let i = stack.pop()?;
            let node = &self.nodes[i];
            stack.extend(node.children.iter().rev());
            Some((node.depth, node))
        })
    }

    /// The events, in global order, without the tree.
    pub fn into_events(self) -> Vec<E> {
        self.nodes.into_iter().map(|n| n.event).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Ev(String, Option<String>);

    impl Caused for Ev {
        fn event_id(&self) -> &str {
            &self.0
        }
        fn causation_id(&self) -> Option<&str> {
            self.1.as_deref()
        }
    }

    fn ev(id: &str, cause: Option<&str>) -> Ev {
        Ev(id.to_owned(), cause.map(str::to_owned))
    }

    fn walk(t: &Timeline<Ev>) -> Vec<String> {
        t.depth_first()
            .map(|(d, n)| format!("{}{}", "  ".repeat(d), n.event.0))
            .collect()
    }

    #[test]
    fn branches_and_roots_follow_causation_in_global_order() {
        let t = Timeline::new(vec![
            ev("a", None),
            ev("b", Some("a")),
            ev("x", Some("elsewhere")),
            ev("c", Some("a")),
            ev("d", Some("b")),
            ev("y", Some("x")),
        ]);
        assert_eq!(walk(&t), ["a", "  b", "    d", "  c", "x", "  y"]);
        assert_eq!(t.roots(), [0, 2]);
        assert_eq!(t.node(0).children, [1, 3]);
        assert_eq!(t.node(4).parent, Some(1));
        assert_eq!(t.node(4).depth, 2);
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn a_cause_recorded_later_or_a_cycle_makes_roots_and_loses_nothing() {
        // `a` names `b` as its cause, and `b` names `a`: `a` comes first,
        // so `b` is its child and `a` a root.
        let t = Timeline::new(vec![ev("a", Some("b")), ev("b", Some("a"))]);
        assert_eq!(walk(&t), ["a", "  b"]);
        // An event caused by itself is a root.
        let t = Timeline::new(vec![ev("s", Some("s"))]);
        assert_eq!(walk(&t), ["s"]);
        assert!(Timeline::<Ev>::new(Vec::new()).is_empty());
    }

    #[test]
    fn a_repeated_id_keeps_its_first_place() {
        let t = Timeline::new(vec![ev("a", None), ev("a", None), ev("b", Some("a"))]);
        assert_eq!(walk(&t), ["a", "  b", "a"]);
    }

    #[test]
    fn a_long_chain_is_walked_and_dropped_without_recursion() {
        let n = 200_000;
        let events = (0..n)
            .map(|i| {
                ev(
                    &i.to_string(),
                    (i > 0).then(|| (i - 1).to_string()).as_deref(),
                )
            })
            .collect();
        let t = Timeline::new(events);
        assert_eq!(t.depth_first().count(), n);
        assert_eq!(t.depth_first().last().map(|(d, _)| d), Some(n - 1));
        drop(t);
    }
}
