//! A scripted XEP-0045 room service for tests, registered on its own
//! domain like a room on another server. It records every stanza it sends
//! per real JID, so tests can show that an account receives one copy of
//! room traffic whatever its number of sessions, and it can "forget" an
//! occupant to simulate a room that lost us (ACCOUNT-MUC rule 15).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use minidom::Element;
use roost_core::router::Service;
use roost_core::Server;
use roost_proto::{Condition, Elem, ElementExt, Stanza, StanzaError};

const MUC: &str = "http://jabber.org/protocol/muc";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

#[derive(Default)]
struct State {
    /// room -> nick -> real JID
    rooms: HashMap<String, BTreeMap<String, String>>,
    /// room -> subject
    subjects: HashMap<String, String>,
    /// real JID -> stanzas sent to it
    sent: HashMap<String, usize>,
    /// Groupchat messages, for history on join.
    history: HashMap<String, Vec<Element>>,
    counter: u64,
}

#[derive(Clone, Default)]
pub struct FakeRooms {
    state: Arc<Mutex<State>>,
}

fn presence(
    from: String,
    to: &str,
    item_jid: Option<&str>,
    codes: &[&str],
    kind: Option<&str>,
) -> Element {
    let mut x = Element::bare("x", MUC_USER).child(
        Element::bare("item", MUC_USER)
            .attr_set("affiliation", "member")
            .attr_set(
                "role",
                if kind == Some("unavailable") {
                    "none"
                } else {
                    "participant"
                },
            )
            .attr_opt("jid", item_jid),
    );
    for c in codes {
        x.append_child(Element::bare("status", MUC_USER).attr_set("code", *c));
    }
    Element::bare("presence", "jabber:client")
        .attr_set("from", from)
        .attr_set("to", to)
        .attr_opt("type", kind)
        .child(x)
}

impl FakeRooms {
    pub fn install(server: &Arc<Server>, domain: &str) -> FakeRooms {
        let rooms = FakeRooms::default();
        server.router.add_service(domain, Arc::new(rooms.clone()));
        rooms
    }

    /// Stanzas the rooms sent to this real JID so far.
    pub fn sent_to(&self, jid: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .sent
            .get(jid)
            .copied()
            .unwrap_or(0)
    }

    /// Real JIDs in a room, by nick.
    pub fn occupants(&self, room: &str) -> BTreeMap<String, String> {
        self.state
            .lock()
            .unwrap()
            .rooms
            .get(room)
            .cloned()
            .unwrap_or_default()
    }

    /// Drop an occupant without telling anyone (the room "restarted").
    pub fn forget(&self, room: &str, nick: &str) {
        if let Some(r) = self.state.lock().unwrap().rooms.get_mut(room) {
            r.remove(nick);
        }
    }

    /// Shut the room down (status 332): everyone is out.
    pub fn shutdown(&self, server: &Arc<Server>, room: &str) {
        let out = {
            let mut st = self.state.lock().unwrap();
            let Some(r) = st.rooms.remove(room) else {
                return;
            };
            r.iter()
                .map(|(nick, real)| {
                    (
                        real.clone(),
                        presence(
                            format!("{room}/{nick}"),
                            real,
                            None,
                            &["332", "110"],
                            Some("unavailable"),
                        ),
                    )
                })
                .collect::<Vec<_>>()
        };
        self.send(server, out);
    }

    /// Kick an occupant (status 307).
    pub fn kick(&self, server: &Arc<Server>, room: &str, nick: &str) {
        let out = {
            let mut st = self.state.lock().unwrap();
            let Some(r) = st.rooms.get_mut(room) else {
                return;
            };
            let Some(real) = r.remove(nick) else { return };
            let mut out = vec![(
                real.clone(),
                presence(
                    format!("{room}/{nick}"),
                    &real,
                    None,
                    &["307", "110"],
                    Some("unavailable"),
                ),
            )];
            for other in r.values() {
                out.push((
                    other.clone(),
                    presence(
                        format!("{room}/{nick}"),
                        other,
                        None,
                        &["307"],
                        Some("unavailable"),
                    ),
                ));
            }
            out
        };
        self.send(server, out);
    }

    fn send(&self, server: &Arc<Server>, out: Vec<(String, Element)>) {
        {
            let mut st = self.state.lock().unwrap();
            for (to, _) in &out {
                *st.sent.entry(to.clone()).or_default() += 1;
            }
        }
        for (_, el) in out {
            server.route_element(el);
        }
    }

    fn handle(&self, stanza: &Stanza) -> Vec<(String, Element)> {
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let counter = st.counter;
        let Some(to) = stanza.to.clone() else {
            return vec![];
        };
        let Some(from) = stanza.from.clone() else {
            return vec![];
        };
        let real = from.to_string();
        let room = to.to_bare().to_string();
        let nick = to.resource().map(|r| r.to_string());
        let mut out = Vec::new();
        let occupants = st.rooms.entry(room.clone()).or_default().clone();
        let my_nick = occupants
            .iter()
            .find(|(_, j)| **j == real)
            .map(|(n, _)| n.clone());
        match stanza.el.name() {
            "presence" => {
                let Some(nick) = nick else { return out };
                if stanza.type_attr() == Some("unavailable") {
                    if let Some(mine) = my_nick {
                        st.rooms.get_mut(&room).unwrap().remove(&mine);
                        out.push((
                            real.clone(),
                            presence(
                                format!("{room}/{mine}"),
                                &real,
                                None,
                                &["110"],
                                Some("unavailable"),
                            ),
                        ));
                        for other in occupants.values().filter(|j| **j != real) {
                            out.push((
                                other.clone(),
                                presence(
                                    format!("{room}/{mine}"),
                                    other,
                                    None,
                                    &[],
                                    Some("unavailable"),
                                ),
                            ));
                        }
                    }
                    return out;
                }
                if let Some(mine) = my_nick {
                    if mine != nick {
                        if occupants.contains_key(&nick) {
                            let mut e = StanzaError::new(Condition::Conflict).reply_to(&stanza.el);
                            e.set("from", format!("{room}/{nick}"));
                            out.push((real.clone(), e));
                            return out;
                        }
                        // Nick change: 303 then the new presence (XEP-0045 §7.6).
                        let r = st.rooms.get_mut(&room).unwrap();
                        r.remove(&mine);
                        r.insert(nick.clone(), real.clone());
                        for (_, other) in r.clone() {
                            let codes: &[&str] = if other == real {
                                &["303", "110"]
                            } else {
                                &["303"]
                            };
                            let mut p = presence(
                                format!("{room}/{mine}"),
                                &other,
                                None,
                                codes,
                                Some("unavailable"),
                            );
                            if let Some(item) = p
                                .get_child_mut("x", MUC_USER)
                                .and_then(|x| x.get_child_mut("item", MUC_USER))
                            {
                                item.set("nick", nick.clone());
                            }
                            out.push((other.clone(), p));
                            let codes: &[&str] = if other == real { &["110"] } else { &[] };
                            out.push((
                                other.clone(),
                                presence(format!("{room}/{nick}"), &other, None, codes, None),
                            ));
                        }
                    } else {
                        for other in occupants.values() {
                            let mut p = stanza.el.clone();
                            p.set("from", format!("{room}/{nick}"));
                            p.set("to", other.clone());
                            out.push((other.clone(), p));
                        }
                    }
                    return out;
                }
                if occupants.contains_key(&nick) {
                    let mut e = StanzaError::new(Condition::Conflict).reply_to(&stanza.el);
                    e.set("from", format!("{room}/{nick}"));
                    out.push((real.clone(), e));
                    return out;
                }
                if !stanza.el.has_child("x", MUC) {
                    return out;
                }
                // Join: others' presence, then self-presence with 110 last.
                for (n, j) in &occupants {
                    out.push((
                        real.clone(),
                        presence(format!("{room}/{n}"), &real, Some(j), &[], None),
                    ));
                }
                let first = occupants.is_empty() && !st.subjects.contains_key(&room);
                let codes: &[&str] = if first {
                    &["100", "201", "110"]
                } else {
                    &["100", "110"]
                };
                out.push((
                    real.clone(),
                    presence(format!("{room}/{nick}"), &real, Some(&real), codes, None),
                ));
                for other in occupants.values() {
                    out.push((
                        other.clone(),
                        presence(format!("{room}/{nick}"), other, Some(&real), &[], None),
                    ));
                }
                let max = stanza
                    .el
                    .get_child("x", MUC)
                    .and_then(|x| x.get_child("history", MUC))
                    .and_then(|h| h.attr("maxstanzas"))
                    .and_then(|m| m.parse::<usize>().ok())
                    .unwrap_or(20);
                let hist = st.history.get(&room).cloned().unwrap_or_default();
                for m in hist.iter().rev().take(max).rev() {
                    let mut m = m.clone();
                    m.set("to", real.clone());
                    m.append_child(
                        Element::bare("delay", "urn:xmpp:delay")
                            .attr_set("stamp", "2020-01-01T00:00:00Z"),
                    );
                    out.push((real.clone(), m));
                }
                let subject = st.subjects.entry(room.clone()).or_default().clone();
                out.push((
                    real.clone(),
                    Element::bare("message", "jabber:client")
                        .attr_set("type", "groupchat")
                        .attr_set("from", room.clone())
                        .attr_set("to", real.clone())
                        .child(Element::bare("subject", "jabber:client").text_node(subject)),
                ));
                st.rooms.get_mut(&room).unwrap().insert(nick, real);
            }
            "message" => {
                let Some(mine) = my_nick else {
                    let mut e = StanzaError::new(Condition::NotAcceptable).reply_to(&stanza.el);
                    e.set("from", room.clone());
                    out.push((real, e));
                    return out;
                };
                if stanza.type_attr() == Some("groupchat") {
                    let mut m = stanza.el.clone();
                    m.set("from", format!("{room}/{mine}"));
                    m.append_child(
                        Element::bare("stanza-id", "urn:xmpp:sid:0")
                            .attr_set("id", format!("fake-{counter}"))
                            .attr_set("by", room.clone()),
                    );
                    st.history.entry(room.clone()).or_default().push(m.clone());
                    for other in occupants.values() {
                        let mut m = m.clone();
                        m.set("to", other.clone());
                        out.push((other.clone(), m));
                    }
                } else if let Some(n) = nick {
                    if let Some(target) = occupants.get(&n) {
                        let mut m = stanza.el.clone();
                        m.set("from", format!("{room}/{mine}"));
                        m.set("to", target.clone());
                        out.push((target.clone(), m));
                    }
                }
            }
            "iq" if stanza.is_iq_request() => {
                let is_ping = stanza.el.has_child("ping", "urn:xmpp:ping");
                let reply = if is_ping && my_nick.is_some() && nick == my_nick {
                    roost_core::server::iq_reply(&stanza.el, Ok(None))
                } else if is_ping {
                    StanzaError::new(Condition::NotAcceptable).reply_to(&stanza.el)
                } else {
                    roost_core::server::iq_reply(
                        &stanza.el,
                        Ok(Some(Element::bare(
                            "query",
                            "http://jabber.org/protocol/disco#info",
                        ))),
                    )
                };
                out.push((real, reply));
            }
            _ => {}
        }
        out
    }
}

impl Service for FakeRooms {
    fn deliver(&self, server: &Arc<Server>, stanza: Stanza) {
        let out = self.handle(&stanza);
        self.send(server, out);
    }
}
