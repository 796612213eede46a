//! Rendezvous (highest random weight) hashing: which live node owns an
//! account or a room. Every node computes the same answer from the same
//! list of nodes, with no coordination, and when a node leaves only the
//! keys it owned move (each to the node with the next highest weight);
//! when one joins it takes about 1/n of the keys.

/// The owner of `key` among `nodes` (`None` when the list is empty).
pub fn owner<'a>(nodes: &'a [std::sync::Arc<str>], key: &str) -> Option<&'a std::sync::Arc<str>> {
    nodes
        .iter()
        .max_by_key(|n| (weight(n, key), n.as_ref().to_string()))
}

/// 64-bit FNV-1a of node and key, then a finaliser (splitmix64) so that
/// similar names spread well. Stable across versions and platforms, which
/// std's `DefaultHasher` does not promise; nodes of different builds must
/// agree.
pub(crate) fn weight(node: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn nodes(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn keys_spread_over_the_nodes() {
        let n = nodes(&["n1", "n2", "n3"]);
        let mut counts = std::collections::HashMap::new();
        for i in 0..3000 {
            let key = format!("user{i}@example.org");
            *counts
                .entry(owner(&n, &key).unwrap().to_string())
                .or_insert(0) += 1;
        }
        for c in counts.values() {
            assert!((800..1200).contains(c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn only_the_keys_of_a_leaving_node_move() {
        let all = nodes(&["n1", "n2", "n3", "n4"]);
        let without = nodes(&["n1", "n2", "n4"]);
        for i in 0..2000 {
            let key = format!("room{i}@muc.example.org");
            let before = owner(&all, &key).unwrap();
            let after = owner(&without, &key).unwrap();
            if before.as_ref() != "n3" {
                assert_eq!(before, after, "{key} moved although its owner stayed");
            }
        }
    }

    #[test]
    fn the_order_of_the_list_does_not_matter() {
        let a = nodes(&["n1", "n2", "n3"]);
        let b = nodes(&["n3", "n1", "n2"]);
        for i in 0..500 {
            let key = format!("k{i}");
            assert_eq!(owner(&a, &key), owner(&b, &key));
        }
        assert!(owner(&[], "k").is_none());
    }
}
