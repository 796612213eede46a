//! Helpers for XEP-0045 tests: joining and creating rooms, configuring
//! them, and reading status codes, items and error conditions out of what
//! the rooms send.

use minidom::Element;
use roost_server::Config;

use crate::client::{Client, NS_CLIENT};
use crate::TestServer;

pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const DATA: &str = "jabber:x:data";

/// The default room service of a test server.
pub const SERVICE: &str = "conference.localhost";

/// A server whose sessions join rooms on their own (plain XEP-0045,
/// account-based joining off), so that tests see the MUC service itself.
pub async fn server() -> TestServer {
    server_with(|_| {}).await
}

pub async fn server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.account_muc.enabled = false;
        tweak(c);
    })
    .await
}

/// `name@conference.localhost`.
pub fn room(name: &str) -> String {
    format!("{name}@{SERVICE}")
}

/// The `muc#user` status codes of a stanza, in order.
pub fn status_codes(e: &Element) -> Vec<u16> {
    e.get_child("x", MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn has_status(e: &Element, code: u16) -> bool {
    status_codes(e).contains(&code)
}

/// The `muc#user` item of a presence.
pub fn item(e: &Element) -> Option<&Element> {
    e.get_child("x", MUC_USER)?.get_child("item", MUC_USER)
}

/// The defined condition of an error stanza.
pub fn error_condition(e: &Element) -> Option<String> {
    e.get_child("error", NS_CLIENT).and_then(|err| {
        err.children()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_string())
    })
}

pub fn is_presence_from(e: &Element, from: &str) -> bool {
    e.name() == "presence" && e.attr("from") == Some(from)
}

/// A room's self-presence (status 110) or an error presence from it.
pub fn is_join_outcome(e: &Element, occupant: &str) -> bool {
    is_presence_from(e, occupant) && (e.attr("type") == Some("error") || has_status(e, 110))
}

pub fn is_groupchat_with_body(e: &Element, body: &str) -> bool {
    e.name() == "message"
        && e.attr("type") == Some("groupchat")
        && crate::client::body(e).as_deref() == Some(body)
}

/// A `<field/>` of a submitted form.
pub fn field(var: &str, value: &str) -> String {
    format!(
        "<field var='{var}'><value>{}</value></field>",
        escape(value)
    )
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

impl Client {
    /// Send a join with `x_inner` inside `<x xmlns='…muc'/>` and wait for
    /// the outcome: the self-presence or the error presence.
    pub async fn join_room_with(&mut self, room: &str, nick: &str, x_inner: &str) -> Element {
        let occupant = format!("{room}/{nick}");
        self.send(&format!(
            "<presence to='{occupant}'><x xmlns='{MUC}'>{x_inner}</x></presence>"
        ))
        .await;
        self.expect(&format!("join outcome from {occupant}"), |e| {
            is_join_outcome(e, &occupant)
        })
        .await
    }

    /// Join and wait for the self-presence and the subject, which ends the
    /// join sequence; panics on an error.
    pub async fn join_room(&mut self, room: &str, nick: &str) -> Element {
        let own = self.join_room_with(room, nick, "").await;
        assert_ne!(
            own.attr("type"),
            Some("error"),
            "joining {room} failed: {}",
            String::from(&own)
        );
        self.expect_subject(room).await;
        own
    }

    /// The subject message that ends a join sequence.
    pub async fn expect_subject(&mut self, room: &str) -> Element {
        let room = room.to_string();
        self.expect("room subject", move |e| {
            e.name() == "message"
                && e.attr("from").is_some_and(|f| f.starts_with(room.as_str()))
                && e.get_child("subject", NS_CLIENT).is_some()
                && e.get_child("body", NS_CLIENT).is_none()
        })
        .await
    }

    /// Create an instant room (§10.1.2) as its owner.
    pub async fn create_room(&mut self, room: &str, nick: &str) {
        let own = self.join_room(room, nick).await;
        assert!(
            has_status(&own, 201),
            "room existed: {}",
            String::from(&own)
        );
        let r = self
            .iq(
                "set",
                Some(room),
                &format!("<query xmlns='{MUC_OWNER}'><x xmlns='{DATA}' type='submit'/></query>"),
            )
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    }

    /// Submit the configuration form with these fields; the IQ response.
    pub async fn configure_room(&mut self, room: &str, fields: &[(&str, &str)]) -> Element {
        let fields: String = fields.iter().map(|(v, x)| field(v, x)).collect();
        self.iq(
            "set",
            Some(room),
            &format!(
                "<query xmlns='{MUC_OWNER}'><x xmlns='{DATA}' type='submit'>\
                 {}{fields}</x></query>",
                field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig")
            ),
        )
        .await
    }

    /// Create a room and configure it in one go; panics on failure.
    pub async fn create_configured_room(
        &mut self,
        room: &str,
        nick: &str,
        fields: &[(&str, &str)],
    ) {
        let own = self.join_room(room, nick).await;
        assert!(
            has_status(&own, 201),
            "room existed: {}",
            String::from(&own)
        );
        let r = self.configure_room(room, fields).await;
        assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    }

    /// A `muc#admin` set with these items; the IQ response.
    pub async fn admin_set(&mut self, room: &str, items: &str) -> Element {
        self.iq(
            "set",
            Some(room),
            &format!("<query xmlns='{MUC_ADMIN}'>{items}</query>"),
        )
        .await
    }

    /// Send a groupchat message to a room.
    pub async fn say(&mut self, room: &str, body: &str) {
        let id = self.new_id();
        self.send(&format!(
            "<message to='{room}' type='groupchat' id='{id}'><body>{}</body></message>",
            escape(body)
        ))
        .await;
    }

    /// Wait for a groupchat message with this body.
    pub async fn expect_groupchat(&mut self, body: &str) -> Element {
        let b = body.to_string();
        self.expect(&format!("groupchat {body:?}"), move |e| {
            is_groupchat_with_body(e, &b)
        })
        .await
    }

    /// Leave a room and wait for the unavailable self-presence.
    pub async fn leave_room(&mut self, room: &str, nick: &str) -> Element {
        let occupant = format!("{room}/{nick}");
        self.send(&format!("<presence to='{occupant}' type='unavailable'/>"))
            .await;
        self.expect("unavailable self-presence", |e| {
            is_presence_from(e, &occupant)
                && e.attr("type") == Some("unavailable")
                && has_status(e, 110)
        })
        .await
    }
}
