//! RFC 6121 §4.7.2.1: what a presence's `<show/>` says about availability,
//! ranked, for places that pick "the most available" of several presences
//! (an account in a room, several sessions behind one room nick).

use minidom::Element;

use crate::ns;

/// Higher is more available: chat, then plain available, away, dnd, xa.
/// An unknown `<show/>` counts as plain available (§4.7.2.1 lists only these).
pub fn availability(presence: &Element) -> u8 {
    match presence
        .get_child("show", ns::CLIENT)
        .map(|s| s.text())
        .as_deref()
        .map(str::trim)
    {
        Some("chat") => 5,
        None | Some("") => 4,
        Some("away") => 3,
        Some("dnd") => 2,
        Some("xa") => 1,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_rfc_6121() {
        let p = |show: &str| -> Element {
            format!("<presence xmlns='jabber:client'>{show}</presence>")
                .parse()
                .unwrap()
        };
        let ranks: Vec<u8> = [
            "<show>chat</show>",
            "",
            "<show>away</show>",
            "<show>dnd</show>",
            "<show>xa</show>",
        ]
        .iter()
        .map(|s| availability(&p(s)))
        .collect();
        assert_eq!(ranks, [5, 4, 3, 2, 1]);
        assert_eq!(availability(&p("<show>bogus</show>")), 4);
    }
}
