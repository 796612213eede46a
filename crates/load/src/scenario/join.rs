//! `join`: how long a join takes, from the join presence to the
//! self-presence (status 110), for an account's first session and for a
//! later session of the same account. With account-based joining the later
//! join is answered by the server from its own state; with plain XEP-0045
//! it is a second full join. Measured one account at a time into one room
//! that an owner session (account 0) holds open.

use std::sync::Arc;

use tokio::time::Instant;

use super::Ctx;
use crate::stats::{ms, Histogram};
use crate::xmpp::escape;

pub struct Params {
    pub samples: u64,
    /// Occupants already in the room (accounts 1..=background), so that
    /// the join sequence has a realistic size.
    pub background: u64,
    pub room: String,
}

pub async fn run(ctx: Arc<Ctx>, p: Params) -> anyhow::Result<(String, String)> {
    let room = format!("{}@{}", p.room, ctx.muc_domain);
    let deadline = || Instant::now() + ctx.target.timeout;
    let (mut owner, _) = ctx.login(0, "owner").await?;
    if let Err(c) = owner.join_room(&room, &ctx.user(0), deadline()).await? {
        anyhow::bail!("owner cannot join {room}: {c}");
    }
    let mut background = Vec::new();
    for i in 1..=p.background {
        let (mut c, _) = ctx.login(i, "bg").await?;
        if let Err(cond) = c.join_room(&room, &ctx.user(i), deadline()).await? {
            anyhow::bail!("background {i} cannot join: {cond}");
        }
        background.push(c);
    }
    let first = Histogram::new();
    let later = Histogram::new();
    let base = 1 + p.background;
    for i in base..base + p.samples {
        let (mut a, _) = ctx.login(i, "first").await?;
        let (mut b, _) = ctx.login(i, "later").await?;
        let nick = ctx.user(i);
        let t = Instant::now();
        if let Err(c) = a.join_room(&room, &nick, deadline()).await? {
            anyhow::bail!("first join of {nick}: {c}");
        }
        first.record(t.elapsed().as_micros() as u64);
        let t = Instant::now();
        match b.join_room(&room, &nick, deadline()).await? {
            Ok(_) => later.record(t.elapsed().as_micros() as u64),
            // A server that does not share nicks between sessions.
            Err(c) if c == "conflict" => {
                let t = Instant::now();
                if let Err(c) = b.join_room(&room, &format!("{nick}.b"), deadline()).await? {
                    anyhow::bail!("later join of {nick}: {c}");
                }
                later.record(t.elapsed().as_micros() as u64);
            }
            Err(c) => anyhow::bail!("later join of {nick}: {c}"),
        }
        // Leave, so that the room keeps its size for the next sample.
        let leave = format!("<presence to='{}' type='unavailable'/>", escape(&room));
        let _ = b.send_str(&leave).await;
        let _ = a.send_str(&leave).await;
        b.close().await;
        a.close().await;
    }
    for c in background {
        c.close().await;
    }
    owner.close().await;
    let (f, l) = (first.summary(), later.summary());
    let line = ctx
        .line("join")
        .int("samples", p.samples)
        .int("background", p.background)
        .num("first_p50_ms", ms(f.p50))
        .num("first_p99_ms", ms(f.p99))
        .num("first_max_ms", ms(f.max))
        .num("later_p50_ms", ms(l.p50))
        .num("later_p99_ms", ms(l.p99))
        .num("later_max_ms", ms(l.max))
        .finish();
    let human = format!(
        "join [{}]: {} accounts into a room of {}: first session p50 {:.2} ms p99 {:.2} ms; later session p50 {:.2} ms p99 {:.2} ms",
        ctx.label,
        p.samples,
        p.background + 1,
        ms(f.p50),
        ms(f.p99),
        ms(l.p50),
        ms(l.p99)
    );
    Ok((line, human))
}
