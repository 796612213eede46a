//! An account's messages (`AccountMsg`) on the bus: those that need no
//! answer travel in frames through the owner's link (in order with the
//! rest); those that do (bind, questions) as NATS requests.

use std::sync::Arc;

use jid::BareJid;
use minidom::Element;
use roost_proto::{Elem, ElementExt};

use super::frame::{self, Entry};
use super::links::{Out, Redo};
use super::Cluster;
use crate::account::push::RoomPolicy;
use crate::account::{AccountMsg, DeviceState, RoomBookmark};

const NS: &str = "urn:roost:cluster:0";

impl Cluster {
    /// Send `msg` for `account` to its owner `node`.
    pub(crate) fn send_account(
        self: &Arc<Self>,
        node: Arc<str>,
        account: &BareJid,
        msg: AccountMsg,
    ) {
        let a = account.as_str();
        let entry = |kind: &str, fields: &[&str]| Out::Entry(Entry::new(kind, fields, Vec::new()));
        let out = match msg {
            AccountMsg::Bind {
                resource,
                handle,
                inline,
                reply,
            } => {
                let inline = inline.map(|b| *b).unwrap_or_default();
                let e = Entry::new(
                    "BIND",
                    &[
                        a,
                        &resource,
                        &handle.id.to_string(),
                        &self.node,
                        if inline.carbons { "1" } else { "0" },
                        if inline.rooms { "1" } else { "0" },
                    ],
                    Vec::new(),
                );
                let c = self.clone();
                tokio::spawn(async move {
                    let answer = c.request(&node, &e).await;
                    let Some(answer) = answer else {
                        return; // the reply is dropped: the bind failed
                    };
                    match answer.first().map(|e| e.kind.as_str()) {
                        Some("OK") => {
                            let rooms = answer
                                .iter()
                                .filter(|e| e.kind == "ROOM")
                                .map(|e| (e.field(0).to_string(), e.field(1).to_string()))
                                .collect();
                            let _ = reply.send(Some(rooms));
                        }
                        Some("FULL") => {
                            let _ = reply.send(None);
                        }
                        _ => {}
                    }
                });
                return;
            }
            AccountMsg::Unbind {
                resource,
                session_id,
            } => entry("AU", &[a, &resource, &session_id.to_string()]),
            AccountMsg::FromSession { resource, stanza } => {
                if stanza.receipt.is_some() {
                    let e = Entry::new("AF", &[a, &resource], Vec::new());
                    Out::Receipted(
                        e,
                        Box::new(Redo::Account(account.clone(), Some(resource), stanza)),
                    )
                } else {
                    let e = Entry::new("AF", &[a, &resource, ""], stanza.el.to_xml());
                    Out::Entry(e)
                }
            }
            AccountMsg::Deliver(stanza) => {
                if stanza.receipt.is_some() {
                    let e = Entry::new("AD", &[a], Vec::new());
                    Out::Receipted(e, Box::new(Redo::Account(account.clone(), None, stanza)))
                } else {
                    Out::Entry(Entry::new("AD", &[a, ""], stanza.el.to_xml()))
                }
            }
            AccountMsg::RejoinBookmarked(room) => entry("AR", &[a, room.as_str()]),
            AccountMsg::Bookmarks(list) => {
                Out::Entry(Entry::new("AB", &[a], bookmarks_xml(&list).to_xml()))
            }
            AccountMsg::DeviceState {
                resource,
                session_id,
                state,
            } => {
                let state = match state {
                    DeviceState::Live => "live",
                    DeviceState::Inactive => "inactive",
                    DeviceState::Hibernated => "hibernated",
                };
                entry("AS", &[a, &resource, &session_id.to_string(), state])
            }
            AccountMsg::CheckRooms => entry("AC", &[a]),
            AccountMsg::Vanished {
                resource,
                session_id,
            } => entry("AV", &[a, &resource, &session_id.to_string()]),
            AccountMsg::Flush(done) => {
                let _ = done.send(());
                return;
            }
            AccountMsg::EndSessions {
                reason,
                text,
                reply,
            } => {
                let e = Entry::new("END", &[a, reason.as_str()], text.into_bytes());
                let c = self.clone();
                tokio::spawn(async move {
                    if let Some(answer) = c.request(&node, &e).await {
                        let n = answer
                            .first()
                            .and_then(|e| e.field(0).parse().ok())
                            .unwrap_or(0);
                        let _ = reply.send(n);
                    }
                });
                return;
            }
            AccountMsg::HasSessions(reply) => {
                let e = Entry::new("HAS", &[a], Vec::new());
                let c = self.clone();
                tokio::spawn(async move {
                    if let Some(answer) = c.request(&node, &e).await {
                        let _ = reply.send(answer.first().is_some_and(|e| e.field(0) == "1"));
                    }
                });
                return;
            }
            AccountMsg::PushRegistrations { revoke, reply } => {
                let e = Entry::new("PUSHREG", &[a], revoke.join("\n").into_bytes());
                let c = self.clone();
                tokio::spawn(async move {
                    if let Some(answer) = c.request(&node, &e).await {
                        let list = answer
                            .iter()
                            .filter(|e| e.kind == "REG")
                            .map(|e| {
                                (
                                    e.field(0).to_string(),
                                    e.field(1).to_string(),
                                    e.field(2).to_string(),
                                )
                            })
                            .collect();
                        let _ = reply.send(list);
                    }
                });
                return;
            }
            // Caps are looked up by the owner itself; a handoff is local.
            AccountMsg::CapsResolved { .. } | AccountMsg::Handoff => return,
        };
        self.push(&node, out);
    }

    /// A request to `node`, answered with entries; `None` on no answer.
    async fn request(&self, node: &str, e: &Entry) -> Option<Vec<Entry>> {
        let mut body = Vec::new();
        e.write(&mut body);
        match self
            .client
            .request(self.subjects.node(node), body.into())
            .await
        {
            Ok(msg) => frame::read(&msg.payload),
            Err(err) => {
                tracing::warn!(node, kind = %e.kind, error = %err, "cluster request failed");
                None
            }
        }
    }
}

/// The account message of an entry from `origin`.
pub(super) fn decode(
    c: &Arc<Cluster>,
    origin: &Arc<str>,
    e: &Entry,
) -> Option<(BareJid, AccountMsg)> {
    let account = BareJid::new(e.field(0)).ok()?;
    let stanza = |token: &str| {
        let mut s = super::inbound::parse_stanza(&e.payload)?;
        s.receipt = super::inbound::receipt(c, origin, token);
        Some(s)
    };
    let msg = match e.kind.as_str() {
        "AU" => AccountMsg::Unbind {
            resource: e.field(1).to_string(),
            session_id: e.field(2).parse().ok()?,
        },
        "AF" => AccountMsg::FromSession {
            resource: e.field(1).to_string(),
            stanza: stanza(e.field(2))?,
        },
        "AD" => AccountMsg::Deliver(stanza(e.field(1))?),
        "AR" => AccountMsg::RejoinBookmarked(BareJid::new(e.field(1)).ok()?),
        "AB" => {
            let el = roost_proto::element::parse(e.payload_str()).ok()?;
            AccountMsg::Bookmarks(bookmarks_from(&el))
        }
        "AS" => AccountMsg::DeviceState {
            resource: e.field(1).to_string(),
            session_id: e.field(2).parse().ok()?,
            state: match e.field(3) {
                "inactive" => DeviceState::Inactive,
                "hibernated" => DeviceState::Hibernated,
                _ => DeviceState::Live,
            },
        },
        "AC" => AccountMsg::CheckRooms,
        "AV" => AccountMsg::Vanished {
            resource: e.field(1).to_string(),
            session_id: e.field(2).parse().ok()?,
        },
        _ => return None,
    };
    Some((account, msg))
}

fn policy_name(p: &RoomPolicy) -> &'static str {
    match p {
        RoomPolicy::Always => "always",
        RoomPolicy::Mentions => "mentions",
        RoomPolicy::Never => "never",
    }
}

fn bookmarks_xml(list: &[RoomBookmark]) -> Element {
    Element::bare("bookmarks", NS).children_from(list.iter().map(|b| {
        Element::bare("room", NS)
            .attr_set("jid", b.room.as_str())
            .attr_opt("nick", b.nick.clone())
            .attr_opt("password", b.password.clone())
            .attr_set("autojoin", if b.autojoin { "1" } else { "0" })
            .attr_opt("push", b.push.as_ref().map(policy_name))
    }))
}

fn bookmarks_from(el: &Element) -> Vec<RoomBookmark> {
    el.children()
        .filter_map(|r| {
            Some(RoomBookmark {
                room: BareJid::new(r.attr("jid")?).ok()?,
                nick: r.attr("nick").map(str::to_string),
                password: r.attr("password").map(str::to_string),
                autojoin: r.attr("autojoin") == Some("1"),
                push: match r.attr("push") {
                    Some("always") => Some(RoomPolicy::Always),
                    Some("mentions") => Some(RoomPolicy::Mentions),
                    Some("never") => Some(RoomPolicy::Never),
                    _ => None,
                },
            })
        })
        .collect()
}
