//! XEP-0050 Ad-Hoc Commands on the server's domain, with the XEP-0133
//! Service Administration commands for the accounts of `admins`, and
//! commands for every user (disabling accounts: `roost_core::account::disabled`,
//! the message of the day: `motd.rs`): ping, change their password, list and revoke
//! their FAST login tokens (XEP-0484) and push registrations (XEP-0357).
//!
//! A command that needs input answers `execute` with a form and a session
//! id (status `executing`); the submitted form completes it. The form
//! carries everything, so no state is kept between the two steps (the
//! session id only echoes). Admin commands from anyone else get
//! `forbidden`.

use async_trait::async_trait;
use jid::BareJid;
use minidom::Element;
use roost_core::account::AccountMsg;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{Condition, Elem, Stanza, StanzaError, StreamError};

pub const NS: &str = "http://jabber.org/protocol/commands";
const DATA: &str = "jabber:x:data";
const ADMIN: &str = "http://jabber.org/protocol/admin";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Everyone,
    Admin,
}

struct Command {
    node: &'static str,
    name: &'static str,
    who: Who,
}

const COMMANDS: &[Command] = &[
    Command {
        node: "ping",
        name: "Ping",
        who: Who::Everyone,
    },
    Command {
        node: "urn:roost:command:change-password",
        name: "Change my password",
        who: Who::Everyone,
    },
    Command {
        node: "urn:roost:command:push-registrations",
        name: "My push registrations: list, revoke",
        who: Who::Everyone,
    },
    Command {
        node: "urn:roost:command:login-tokens",
        name: "My login tokens (FAST): list, revoke",
        who: Who::Everyone,
    },
    Command {
        node: "http://jabber.org/protocol/admin#add-user",
        name: "Add a user",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#delete-user",
        name: "Delete users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#change-user-password",
        name: "Change a user's password",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#end-user-session",
        name: "End users' sessions",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#get-registered-users-num",
        name: "Number of registered users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#get-registered-users-list",
        name: "List registered users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#get-online-users-num",
        name: "Number of online users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#get-online-users-list",
        name: "List online users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#announce",
        name: "Send an announcement to online users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#disable-user",
        name: "Disable users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#reenable-user",
        name: "Re-enable users",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#set-motd",
        name: "Set the message of the day",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#edit-motd",
        name: "Edit the message of the day",
        who: Who::Admin,
    },
    Command {
        node: "http://jabber.org/protocol/admin#delete-motd",
        name: "Delete the message of the day",
        who: Who::Admin,
    },
];

pub struct AdHoc {
    /// `admins`: the accounts allowed the XEP-0133 commands.
    pub admins: Vec<BareJid>,
    /// The message of the day (`motd.rs`).
    pub motd: std::sync::Arc<crate::motd::Motd>,
}

/// A submitted form's values, by field.
struct Submitted(Vec<(String, Vec<String>)>);

impl Submitted {
    fn from(cmd: &Element) -> Option<Submitted> {
        let x = cmd.get_child("x", DATA)?;
        if x.attr("type") != Some("submit") {
            return None;
        }
        Some(Submitted(
            x.children()
                .filter(|f| f.name() == "field")
                .map(|f| {
                    (
                        f.attr("var").unwrap_or_default().to_string(),
                        f.children()
                            .filter(|v| v.name() == "value")
                            .map(|v| v.text())
                            .collect(),
                    )
                })
                .collect(),
        ))
    }
    fn one(&self, var: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(v, _)| v == var)
            .and_then(|(_, vals)| vals.first())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
    fn many(&self, var: &str) -> Vec<String> {
        self.0
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, vals)| vals.iter().filter(|s| !s.is_empty()).cloned().collect())
            .unwrap_or_default()
    }
}

fn field(var: &str, kind: &str, label: &str) -> Element {
    Element::bare("field", DATA)
        .attr_set("var", var)
        .attr_set("type", kind)
        .attr_set("label", label)
}

fn form(form_type: &str, title: &str, fields: Vec<Element>) -> Element {
    Element::bare("x", DATA)
        .attr_set("type", "form")
        .child(Element::bare("title", DATA).text_node(title))
        .child(
            Element::bare("field", DATA)
                .attr_set("var", "FORM_TYPE")
                .attr_set("type", "hidden")
                .child(Element::bare("value", DATA).text_node(form_type)),
        )
        .children_from(
            fields
                .into_iter()
                .map(|f| f.child(Element::bare("required", DATA))),
        )
}

fn result_form(form_type: &str, fields: Vec<(&str, &str, Vec<String>)>) -> Element {
    Element::bare("x", DATA)
        .attr_set("type", "result")
        .child(
            Element::bare("field", DATA)
                .attr_set("var", "FORM_TYPE")
                .attr_set("type", "hidden")
                .child(Element::bare("value", DATA).text_node(form_type)),
        )
        .children_from(fields.into_iter().map(|(var, kind, values)| {
            Element::bare("field", DATA)
                .attr_set("var", var)
                .attr_set("type", kind)
                .children_from(
                    values
                        .into_iter()
                        .map(|v| Element::bare("value", DATA).text_node(v)),
                )
        }))
}

fn bad(text: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest).with_text(text)
}

/// What a command step answers: a form to fill, or the end.
enum Step {
    Form(Element),
    Done { note: String, form: Option<Element> },
}

impl AdHoc {
    fn is_admin(&self, ctx: &IqContext<'_>) -> bool {
        ctx.own && ctx.from.is_some_and(|f| self.admins.contains(&f.to_bare()))
    }

    fn visible(&self, ctx: &IqContext<'_>) -> impl Iterator<Item = &'static Command> {
        let admin = self.is_admin(ctx);
        let user = ctx.own && ctx.from.is_some();
        COMMANDS.iter().filter(move |c| match c.who {
            Who::Everyone => user,
            Who::Admin => admin,
        })
    }

    fn account(&self, ctx: &IqContext<'_>, text: &str) -> Result<BareJid, StanzaError> {
        let jid = BareJid::new(text.trim()).map_err(|_| bad("not a JID"))?;
        if jid.node().is_none() || jid.domain().as_str() != ctx.server.config.domain {
            return Err(bad("not an account of this server"));
        }
        Ok(jid)
    }

    async fn end_sessions(
        &self,
        ctx: &IqContext<'_>,
        jid: &BareJid,
        reason: StreamError,
        text: &str,
    ) -> usize {
        if !ctx.server.router.active_accounts().contains(jid) {
            return 0;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        ctx.server.send_to_account(
            jid,
            AccountMsg::EndSessions {
                reason,
                text: text.to_string(),
                reply,
            },
        );
        answer.await.unwrap_or(0)
    }

    async fn run(
        &self,
        ctx: &IqContext<'_>,
        node: &str,
        input: Option<Submitted>,
    ) -> Result<Step, StanzaError> {
        let stores = &ctx.server.stores;
        let store_err = |e: roost_store::StoreError| {
            tracing::error!(error = %e, "ad-hoc command: store error");
            StanzaError::internal()
        };
        let me = ctx
            .from
            .map(|f| f.to_bare())
            .ok_or_else(|| StanzaError::new(Condition::Forbidden))?;
        match node {
            "ping" => Ok(Step::Done {
                note: "pong".into(),
                form: None,
            }),
            "urn:roost:command:change-password"
            | "http://jabber.org/protocol/admin#change-user-password" => {
                let admin = node.starts_with(ADMIN);
                let Some(input) = input else {
                    let mut fields = Vec::new();
                    if admin {
                        fields.push(field("accountjid", "jid-single", "The account"));
                    }
                    fields.push(field("password", "text-private", "New password"));
                    return Ok(Step::Form(form(ADMIN, "Change a password", fields)));
                };
                let who = if admin {
                    self.account(
                        ctx,
                        input.one("accountjid").ok_or_else(|| bad("no account"))?,
                    )?
                } else {
                    me
                };
                let pw = input.one("password").ok_or_else(|| bad("no password"))?;
                let creds = roost_sasl::credentials::derive(pw, roost_sasl::DEFAULT_ITERATIONS)
                    .map_err(|_| bad("this password cannot be used"))?;
                if !stores
                    .accounts
                    .account_exists(&who)
                    .await
                    .map_err(store_err)?
                {
                    return Err(StanzaError::new(Condition::ItemNotFound));
                }
                stores
                    .accounts
                    .set_credentials(&who, &creds)
                    .await
                    .map_err(store_err)?;
                // A new password logs the account's devices out of FAST.
                let _ = roost_core::c2s::fast::revoke(stores, &who, None).await;
                Ok(Step::Done {
                    note: format!("The password of {who} was changed."),
                    form: None,
                })
            }
            "urn:roost:command:login-tokens" => {
                let tokens = roost_core::c2s::fast::records(stores, &me).await;
                match input {
                    None => {
                        let clients: Vec<String> =
                            tokens.iter().map(|t| t.client.clone()).collect();
                        let options = clients.iter().map(|c| {
                            Element::bare("option", DATA)
                                .attr_set("label", c.as_str())
                                .child(Element::bare("value", DATA).text_node(c.as_str()))
                        });
                        let f = Element::bare("x", DATA)
                            .attr_set("type", "form")
                            .child(Element::bare("title", DATA).text_node("Login tokens"))
                            .child(Element::bare("instructions", DATA).text_node(
                                "Clients holding a login token; those selected lose it.",
                            ))
                            .child(field("revoke", "list-multi", "Revoke").children_from(options));
                        Ok(Step::Form(f))
                    }
                    Some(input) => {
                        let mut n = 0;
                        for client in input.many("revoke") {
                            n += roost_core::c2s::fast::revoke(stores, &me, Some(&client))
                                .await
                                .map_err(|_| StanzaError::internal())?;
                        }
                        Ok(Step::Done {
                            note: format!("{n} token(s) revoked."),
                            form: None,
                        })
                    }
                }
            }
            "urn:roost:command:push-registrations" => {
                let revoke = input.as_ref().map(|i| i.many("revoke")).unwrap_or_default();
                let (reply, answer) = tokio::sync::oneshot::channel();
                ctx.server.send_to_account(
                    &me,
                    AccountMsg::PushRegistrations {
                        revoke: revoke.clone(),
                        reply,
                    },
                );
                let left = answer.await.map_err(|_| StanzaError::internal())?;
                if input.is_some() {
                    return Ok(Step::Done {
                        note: format!("{} registration(s) left.", left.len()),
                        form: None,
                    });
                }
                let options = left.iter().map(|(app, node, device)| {
                    let value = format!("{app} {node}");
                    Element::bare("option", DATA)
                        .attr_set("label", format!("{app} (device {device})"))
                        .child(Element::bare("value", DATA).text_node(value))
                });
                Ok(Step::Form(
                    Element::bare("x", DATA)
                        .attr_set("type", "form")
                        .child(Element::bare("title", DATA).text_node("Push registrations"))
                        .child(field("revoke", "list-multi", "Revoke").children_from(options)),
                ))
            }
            n if n.ends_with("#add-user") => {
                let Some(input) = input else {
                    return Ok(Step::Form(form(
                        ADMIN,
                        "Add a user",
                        vec![
                            field("accountjid", "jid-single", "The account"),
                            field("password", "text-private", "Password"),
                            field("password-verify", "text-private", "Password again"),
                        ],
                    )));
                };
                let who = self.account(
                    ctx,
                    input.one("accountjid").ok_or_else(|| bad("no account"))?,
                )?;
                let pw = input.one("password").ok_or_else(|| bad("no password"))?;
                if input.one("password-verify").is_some_and(|v| v != pw) {
                    return Err(bad("the passwords differ"));
                }
                let creds = roost_sasl::credentials::derive(pw, roost_sasl::DEFAULT_ITERATIONS)
                    .map_err(|_| bad("this password cannot be used"))?;
                if !stores
                    .accounts
                    .create_account(&who, &creds)
                    .await
                    .map_err(store_err)?
                {
                    return Err(
                        StanzaError::new(Condition::Conflict).with_text("the account exists")
                    );
                }
                Ok(Step::Done {
                    note: format!("{who} was created."),
                    form: None,
                })
            }
            n if n.ends_with("#delete-user") || n.ends_with("#end-user-session") => {
                let delete = n.ends_with("#delete-user");
                let Some(input) = input else {
                    return Ok(Step::Form(form(
                        ADMIN,
                        if delete {
                            "Delete users"
                        } else {
                            "End sessions"
                        },
                        vec![field("accountjids", "jid-multi", "The accounts")],
                    )));
                };
                let mut done = Vec::new();
                for text in input.many("accountjids") {
                    let who = self.account(ctx, &text)?;
                    if delete {
                        self.end_sessions(
                            ctx,
                            &who,
                            StreamError::NotAuthorized,
                            "the account was removed",
                        )
                        .await;
                        if stores
                            .accounts
                            .remove_account(&who)
                            .await
                            .map_err(store_err)?
                        {
                            let _ = roost_core::c2s::fast::revoke(stores, &who, None).await;
                            let domain = ctx.server.config.domain.clone();
                            let _ = ctx.server.disabled.set(stores, &domain, &who, false).await;
                            if let Some(u) = ctx.server.uploads.get().cloned() {
                                let owner = who.to_string();
                                let _ = tokio::task::spawn_blocking(move || u.sweep(Some(&owner)))
                                    .await;
                            }
                            done.push(who.to_string());
                        }
                    } else {
                        let n = self
                            .end_sessions(
                                ctx,
                                &who,
                                StreamError::PolicyViolation,
                                "ended by an administrator",
                            )
                            .await;
                        if n > 0 {
                            done.push(who.to_string());
                        }
                    }
                }
                let what = if delete {
                    "Deleted"
                } else {
                    "Sessions ended for"
                };
                Ok(Step::Done {
                    note: format!(
                        "{what}: {}",
                        if done.is_empty() {
                            "nobody".into()
                        } else {
                            done.join(", ")
                        }
                    ),
                    form: None,
                })
            }
            n if n.ends_with("#get-registered-users-num")
                || n.ends_with("#get-registered-users-list") =>
            {
                let users = stores
                    .accounts
                    .list_accounts(Some(&ctx.server.config.domain))
                    .await
                    .map_err(store_err)?;
                let form = if n.ends_with("-num") {
                    result_form(
                        ADMIN,
                        vec![(
                            "registeredusersnum",
                            "text-single",
                            vec![users.len().to_string()],
                        )],
                    )
                } else {
                    result_form(
                        ADMIN,
                        vec![(
                            "registereduserjids",
                            "jid-multi",
                            users.iter().map(|u| u.to_string()).collect(),
                        )],
                    )
                };
                Ok(Step::Done {
                    note: String::new(),
                    form: Some(form),
                })
            }
            n if n.ends_with("#get-online-users-num") || n.ends_with("#get-online-users-list") => {
                let online = ctx.server.router.active_accounts();
                let form = if n.ends_with("-num") {
                    result_form(
                        ADMIN,
                        vec![(
                            "onlineusersnum",
                            "text-single",
                            vec![online.len().to_string()],
                        )],
                    )
                } else {
                    result_form(
                        ADMIN,
                        vec![(
                            "onlineuserjids",
                            "jid-multi",
                            online.iter().map(|u| u.to_string()).collect(),
                        )],
                    )
                };
                Ok(Step::Done {
                    note: String::new(),
                    form: Some(form),
                })
            }
            n if n.ends_with("#announce") => {
                let Some(input) = input else {
                    let body = field("announcement", "text-multi", "Announcement");
                    return Ok(Step::Form(form(
                        ADMIN,
                        "Announce to online users",
                        vec![field("subject", "text-single", "Subject"), body],
                    )));
                };
                let text = input.many("announcement").join("\n");
                if text.is_empty() {
                    return Err(bad("an empty announcement"));
                }
                let domain = ctx.server.config.domain.clone();
                let online = ctx.server.router.active_accounts();
                for who in &online {
                    let mut msg = Element::bare("message", roost_proto::ns::CLIENT)
                        .attr_set("type", "headline")
                        .attr_set("from", domain.as_str())
                        .attr_set("to", who.as_str());
                    if let Some(s) = input.one("subject") {
                        msg.append_child(
                            Element::bare("subject", roost_proto::ns::CLIENT).text_node(s),
                        );
                    }
                    msg.append_child(
                        Element::bare("body", roost_proto::ns::CLIENT).text_node(text.clone()),
                    );
                    ctx.server.route_element(msg);
                }
                Ok(Step::Done {
                    note: format!("Sent to {} account(s).", online.len()),
                    form: None,
                })
            }
            n if n.ends_with("#disable-user") || n.ends_with("#reenable-user") => {
                let disable = n.ends_with("#disable-user");
                let Some(input) = input else {
                    return Ok(Step::Form(form(
                        ADMIN,
                        if disable {
                            "Disable users"
                        } else {
                            "Re-enable users"
                        },
                        vec![field("accountjids", "jid-multi", "The accounts")],
                    )));
                };
                let domain = ctx.server.config.domain.clone();
                let mut done = Vec::new();
                for text in input.many("accountjids") {
                    let who = self.account(ctx, &text)?;
                    if !stores
                        .accounts
                        .account_exists(&who)
                        .await
                        .map_err(store_err)?
                    {
                        return Err(StanzaError::new(Condition::ItemNotFound)
                            .with_text(format!("no account {who}")));
                    }
                    let changed = ctx
                        .server
                        .disabled
                        .set(stores, &domain, &who, disable)
                        .await
                        .map_err(store_err)?;
                    if disable {
                        // XEP-0133 §4.5: its sessions end too.
                        self.end_sessions(
                            ctx,
                            &who,
                            StreamError::NotAuthorized,
                            "the account was disabled",
                        )
                        .await;
                    }
                    if changed {
                        done.push(who.to_string());
                    }
                }
                let what = if disable { "Disabled" } else { "Re-enabled" };
                Ok(Step::Done {
                    note: format!(
                        "{what}: {}",
                        if done.is_empty() {
                            "nobody".into()
                        } else {
                            done.join(", ")
                        }
                    ),
                    form: None,
                })
            }
            n if n.ends_with("#set-motd") || n.ends_with("#edit-motd") => {
                let Some(input) = input else {
                    let mut motd = field("motd", "text-multi", "Message of the day");
                    if n.ends_with("#edit-motd") {
                        // §4.24: the form shows the current message.
                        if let Some(m) = self.motd.get(ctx.server).await {
                            for line in m.text.lines() {
                                motd.append_child(Element::bare("value", DATA).text_node(line));
                            }
                        }
                    }
                    return Ok(Step::Form(form(
                        ADMIN,
                        "The message of the day",
                        vec![motd],
                    )));
                };
                let text = input.many("motd").join("\n");
                if text.trim().is_empty() {
                    return Err(bad("an empty message of the day"));
                }
                let sent = self
                    .motd
                    .set(ctx.server, Some(text))
                    .await
                    .map_err(store_err)?;
                Ok(Step::Done {
                    note: format!("Set; sent to {sent} online account(s)."),
                    form: None,
                })
            }
            n if n.ends_with("#delete-motd") => {
                self.motd.set(ctx.server, None).await.map_err(store_err)?;
                Ok(Step::Done {
                    note: "The message of the day was deleted.".into(),
                    form: None,
                })
            }
            _ => Err(StanzaError::new(Condition::ItemNotFound)),
        }
    }
}

#[async_trait]
impl Module for AdHoc {
    fn name(&self) -> &'static str {
        "adhoc"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![
            Protocol::new("XEP-0050: Ad-Hoc Commands", "1.3.0"),
            Protocol::new("XEP-0133: Service Administration", "1.3.0"),
        ]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![NS]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Server, NS, "command")]
    }

    async fn server_node(&self, ctx: &IqContext<'_>, node: &str, items: bool) -> Option<IqResult> {
        if node == NS {
            // XEP-0050 §2.2: the commands this requester may run.
            let list = self.visible(ctx).map(|c| {
                Element::bare("item", roost_proto::ns::DISCO_ITEMS)
                    .attr_set("jid", ctx.server.config.domain.as_str())
                    .attr_set("node", c.node)
                    .attr_set("name", c.name)
            });
            let name = if items {
                roost_proto::ns::DISCO_ITEMS
            } else {
                roost_proto::ns::DISCO_INFO
            };
            let q = Element::bare("query", name).attr_set("node", NS);
            return Some(Ok(Some(if items { q.children_from(list) } else { q })));
        }
        let cmd = COMMANDS.iter().find(|c| c.node == node)?;
        if items {
            return Some(Ok(Some(
                Element::bare("query", roost_proto::ns::DISCO_ITEMS).attr_set("node", node),
            )));
        }
        if !self.visible(ctx).any(|c| c.node == cmd.node) {
            return Some(Err(StanzaError::new(Condition::Forbidden)));
        }
        // XEP-0050 §2.3: a command's identity and features.
        Some(Ok(Some(
            Element::bare("query", roost_proto::ns::DISCO_INFO)
                .attr_set("node", node)
                .child(roost_core::caps::disco_identity(
                    "automation",
                    "command-node",
                    Some(cmd.name),
                ))
                .child(Element::bare("feature", roost_proto::ns::DISCO_INFO).attr_set("var", NS))
                .child(Element::bare("feature", roost_proto::ns::DISCO_INFO).attr_set("var", DATA)),
        )))
    }

    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        if iq.type_attr() != Some("set") {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let cmd = iq
            .el
            .get_child("command", NS)
            .ok_or_else(|| bad("no command"))?;
        let node = cmd.attr("node").ok_or_else(|| bad("no node"))?;
        let Some(known) = COMMANDS.iter().find(|c| c.node == node) else {
            return Err(StanzaError::new(Condition::ItemNotFound));
        };
        if !self.visible(&ctx).any(|c| c.node == known.node) {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let session = cmd
            .attr("sessionid")
            .map(str::to_string)
            .unwrap_or_else(|| roost_proto::id::random_token(12));
        let answer = |status: &str| {
            Element::bare("command", NS)
                .attr_set("node", node)
                .attr_set("sessionid", session.as_str())
                .attr_set("status", status)
        };
        if cmd.attr("action") == Some("cancel") {
            return Ok(Some(answer("canceled")));
        }
        match self.run(&ctx, node, Submitted::from(cmd)).await? {
            Step::Form(f) => Ok(Some(
                answer("executing")
                    .child(
                        Element::bare("actions", NS)
                            .attr_set("execute", "complete")
                            .child(Element::bare("complete", NS)),
                    )
                    .child(f),
            )),
            Step::Done { note, form } => {
                let mut a = answer("completed");
                if !note.is_empty() {
                    a.append_child(
                        Element::bare("note", NS)
                            .attr_set("type", "info")
                            .text_node(note),
                    );
                }
                if let Some(f) = form {
                    a.append_child(f);
                }
                Ok(Some(a))
            }
        }
    }
}
