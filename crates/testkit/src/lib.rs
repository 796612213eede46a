//! Test support: start a real Roost on loopback port 0 with a temporary
//! data folder, and a small XMPP client (our own, over real sockets and
//! TLS) that tests drive stanza by stanza with bounded waits.

pub mod binary;
pub mod caps;
pub mod client;
pub mod component;
pub mod fake_room;
pub mod federation;
pub mod muc;
pub mod server;
pub mod web;

pub use client::{Client, Conn, Login, Mech};
pub use server::TestServer;
