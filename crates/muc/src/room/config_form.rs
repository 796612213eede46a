//! XEP-0045 §10.1–§10.2 and §10.9: the room configuration, its
//! `muc#roomconfig` form (§15.5.3), the owner's requests (configure, accept
//! the defaults for an instant room, cancel, destroy), and the notices of
//! configuration changes (§10.2.1).

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{Condition, Elem, Stanza, StanzaError};
use serde::{Deserialize, Serialize};

use super::affiliation::{Affiliation, Role};
use super::occupant::Notice;
use super::{IqResult, Room};
use crate::config::MucConfig;
use crate::forms::{self, Form};
use crate::ns;

/// `muc#roomconfig_whois`: who sees occupants' real JIDs (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Whois {
    Moderators,
    Anyone,
}

/// `muc#roomconfig_allowpm`: who may send private messages (§7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    None,
}

impl AllowPm {
    fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::None => "none",
        }
    }

    fn parse(s: &str) -> Option<AllowPm> {
        Some(match s {
            "anyone" => AllowPm::Anyone,
            "participants" => AllowPm::Participants,
            "moderators" => AllowPm::Moderators,
            "none" => AllowPm::None,
            _ => return None,
        })
    }

    pub fn allows(self, role: Role) -> bool {
        match self {
            AllowPm::Anyone => role >= Role::Visitor,
            AllowPm::Participants => role >= Role::Participant,
            AllowPm::Moderators => role == Role::Moderator,
            AllowPm::None => false,
        }
    }
}

/// A room's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct RoomConfig {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    /// Listed in the service's disco#items (§6.3).
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// Set: the room is password-protected (§7.2.5).
    pub password: Option<String>,
    pub whois: Whois,
    pub max_users: usize,
    /// Messages of history sent on join (`muc#maxhistoryfetch`).
    pub history_length: usize,
    pub allow_pm: AllowPm,
    /// Participants (not only moderators) may change the subject.
    pub change_subject: bool,
    /// Members may invite to a members-only room (§7.8.2).
    pub allow_invites: bool,
    /// Keep the XEP-0313 archive (announced with status 170).
    pub archiving: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig::new(&MucConfig::default())
    }
}

impl RoomConfig {
    /// The configuration of a new room (§10.1.1).
    pub fn new(service: &MucConfig) -> RoomConfig {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            whois: Whois::Moderators,
            max_users: service.max_occupants,
            history_length: service.max_history,
            allow_pm: AllowPm::Anyone,
            change_subject: false,
            allow_invites: false,
            archiving: true,
        }
    }

    /// Keep stored values within the service's current limits.
    pub fn clamp(&mut self, service: &MucConfig) {
        self.max_users = self.max_users.clamp(1, service.max_occupants);
        self.history_length = self.history_length.min(service.max_history);
    }

    pub fn non_anonymous(&self) -> bool {
        self.whois == Whois::Anyone
    }
}

/// What the store keeps of a room besides subject and affiliations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Settings {
    /// §10.1.1: created but not configured yet.
    pub locked: bool,
    /// Secret behind the room's XEP-0421 occupant ids.
    pub salt: String,
    pub config: RoomConfig,
    /// XEP-0486: the room's vCard (its avatar), as XML.
    pub vcard: Option<String>,
}

impl Settings {
    pub fn parse(text: &str) -> Settings {
        toml::from_str(text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable room settings; using defaults");
            Settings::default()
        })
    }

    pub fn to_text(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// The configuration a submitted form asks for, from `current`; fields not
/// given keep their value, unknown fields are ignored.
pub(crate) fn apply_form(
    current: &RoomConfig,
    service: &MucConfig,
    form: &Form,
) -> Result<RoomConfig, StanzaError> {
    if form.form_type().is_some_and(|t| t != ns::MUC_ROOMCONFIG) {
        return Err(StanzaError::bad_request("FORM_TYPE must be muc#roomconfig"));
    }
    let mut c = current.clone();
    let mut protected: Option<bool> = None;
    let mut secret: Option<String> = None;
    for (var, values) in &form.fields {
        let v = values.first().map(String::as_str).unwrap_or_default();
        let flag = || forms::parse_bool(v).ok_or_else(|| bad_value(var));
        match var.as_str() {
            "muc#roomconfig_roomname" => c.name = v.trim().chars().take(200).collect(),
            "muc#roomconfig_roomdesc" => c.description = v.trim().chars().take(1000).collect(),
            "muc#roomconfig_persistentroom" => c.persistent = flag()?,
            "muc#roomconfig_publicroom" => c.public = flag()?,
            "muc#roomconfig_membersonly" => c.members_only = flag()?,
            "muc#roomconfig_moderatedroom" => c.moderated = flag()?,
            "muc#roomconfig_changesubject" => c.change_subject = flag()?,
            "muc#roomconfig_allowinvites" => c.allow_invites = flag()?,
            "muc#roomconfig_enablearchiving" => c.archiving = flag()?,
            "muc#roomconfig_passwordprotectedroom" => protected = Some(flag()?),
            "muc#roomconfig_roomsecret" => secret = Some(v.to_string()),
            "muc#roomconfig_whois" => {
                c.whois = match v.trim() {
                    "moderators" => Whois::Moderators,
                    "anyone" => Whois::Anyone,
                    _ => return Err(bad_value(var)),
                }
            }
            "muc#roomconfig_allowpm" => {
                c.allow_pm = AllowPm::parse(v.trim()).ok_or_else(|| bad_value(var))?
            }
            "muc#roomconfig_maxusers" => {
                c.max_users = match v.trim() {
                    "none" | "" => service.max_occupants,
                    n => n.parse::<usize>().map_err(|_| bad_value(var))?,
                };
                // §10.1.3: values beyond the service's policy.
                if c.max_users == 0 || c.max_users > service.max_occupants {
                    return Err(StanzaError::new(Condition::NotAcceptable)
                        .with_text(format!("maxusers must be 1 to {}", service.max_occupants)));
                }
            }
            "muc#maxhistoryfetch" | "muc#roomconfig_historylength" => {
                let n = v.trim().parse::<usize>().map_err(|_| bad_value(var))?;
                if n > service.max_history {
                    return Err(
                        StanzaError::new(Condition::NotAcceptable).with_text(format!(
                            "history is limited to {} messages",
                            service.max_history
                        )),
                    );
                }
                c.history_length = n;
            }
            _ => {}
        }
    }
    match (protected, secret) {
        (Some(false), _) => c.password = None,
        (Some(true), secret) => {
            let pw = secret.or(c.password.clone()).unwrap_or_default();
            // §10.1.3: a password-protected room with a blank password.
            if pw.is_empty() {
                return Err(StanzaError::new(Condition::NotAcceptable)
                    .with_text("a password-protected room needs a password"));
            }
            c.password = Some(pw);
        }
        (None, Some(secret)) => {
            c.password = (!secret.is_empty()).then_some(secret);
        }
        (None, None) => {}
    }
    Ok(c)
}

const MAXUSERS_CHOICES: [usize; 6] = [10, 20, 30, 50, 100, 200];

fn bad_value(var: &str) -> StanzaError {
    StanzaError::bad_request(&format!("invalid value for {var}"))
}

impl Room {
    /// §10.1.3 / §10.2: the form, filled with the current configuration.
    fn config_form(&self) -> Element {
        let c = &self.config;
        let max = self.shared.config.max_occupants;
        let boolean = |var: &str, label: &str, value: bool| {
            forms::field(var, "boolean", label, [forms::bool_value(value)])
        };
        let mut maxusers: Vec<String> = MAXUSERS_CHOICES
            .iter()
            .filter(|n| **n <= max)
            .map(usize::to_string)
            .collect();
        for n in [c.max_users.to_string(), max.to_string()] {
            if !maxusers.contains(&n) {
                maxusers.push(n);
            }
        }
        let maxusers_options: Vec<(&str, &str)> =
            maxusers.iter().map(|n| (n.as_str(), n.as_str())).collect();
        let max_users = c.max_users.to_string();
        let history = c.history_length.to_string();
        Element::bare("x", ns::DATA_FORMS)
            .attr_set("type", "form")
            .child(
                Element::bare("title", ns::DATA_FORMS)
                    .text_node(format!("Configuration of {}", self.jid)),
            )
            .child(forms::form_type(ns::MUC_ROOMCONFIG))
            .child(forms::field(
                "muc#roomconfig_roomname",
                "text-single",
                "Natural-Language Room Name",
                [c.name.as_str()],
            ))
            .child(forms::field(
                "muc#roomconfig_roomdesc",
                "text-single",
                "Short Description of Room",
                [c.description.as_str()],
            ))
            .child(boolean(
                "muc#roomconfig_persistentroom",
                "Make Room Persistent?",
                c.persistent,
            ))
            .child(boolean(
                "muc#roomconfig_publicroom",
                "Make Room Publicly Searchable?",
                c.public,
            ))
            .child(boolean(
                "muc#roomconfig_membersonly",
                "Make Room Members-Only?",
                c.members_only,
            ))
            .child(boolean(
                "muc#roomconfig_moderatedroom",
                "Make Room Moderated?",
                c.moderated,
            ))
            .child(boolean(
                "muc#roomconfig_passwordprotectedroom",
                "Password Required to Enter?",
                c.password.is_some(),
            ))
            .child(forms::field(
                "muc#roomconfig_roomsecret",
                "text-private",
                "Password",
                [c.password.as_deref().unwrap_or_default()],
            ))
            .child(forms::with_options(
                forms::field(
                    "muc#roomconfig_whois",
                    "list-single",
                    "Who May Discover Real JIDs?",
                    [match c.whois {
                        Whois::Moderators => "moderators",
                        Whois::Anyone => "anyone",
                    }],
                ),
                &[("moderators", "Moderators Only"), ("anyone", "Anyone")],
            ))
            .child(forms::with_options(
                forms::field(
                    "muc#roomconfig_maxusers",
                    "list-single",
                    "Maximum Number of Occupants",
                    [max_users.as_str()],
                ),
                &maxusers_options,
            ))
            .child(forms::field(
                "muc#maxhistoryfetch",
                "text-single",
                "Maximum Number of History Messages Returned by Room",
                [history.as_str()],
            ))
            .child(forms::with_options(
                forms::field(
                    "muc#roomconfig_allowpm",
                    "list-single",
                    "Who Can Send Private Messages?",
                    [c.allow_pm.as_str()],
                ),
                &[
                    ("anyone", "Anyone"),
                    ("participants", "Anyone with Voice"),
                    ("moderators", "Moderators Only"),
                    ("none", "Nobody"),
                ],
            ))
            .child(boolean(
                "muc#roomconfig_changesubject",
                "Allow Occupants to Change Subject?",
                c.change_subject,
            ))
            .child(boolean(
                "muc#roomconfig_allowinvites",
                "Allow Members to Invite Others?",
                c.allow_invites,
            ))
            .child(boolean(
                "muc#roomconfig_enablearchiving",
                "Archive Messages (XEP-0313)?",
                c.archiving,
            ))
    }

    fn apply_form(&self, form: &Form) -> Result<RoomConfig, StanzaError> {
        apply_form(&self.config, &self.shared.config, form)
    }

    /// `muc#owner` requests (§10).
    pub(super) async fn owner_iq(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        query: &Element,
    ) -> IqResult {
        if self.affiliation_of(&from.to_bare()) != Affiliation::Owner {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only owners may configure the room"));
        }
        let children: Vec<&Element> = query.children().collect();
        match (stanza.type_attr(), children.as_slice()) {
            (Some("get"), []) => Ok(Some(
                Element::bare("query", ns::MUC_OWNER).child(self.config_form()),
            )),
            (Some("set"), [x]) if x.is("x", ns::DATA_FORMS) => {
                let form = Form::parse(x);
                match form.kind.as_str() {
                    "submit" => self.configure(&form).await,
                    // §10.1.3: cancelling the initial configuration destroys
                    // the room; later, it changes nothing.
                    "cancel" => {
                        if self.locked {
                            self.destroy(None, None, None).await?;
                        }
                        Ok(None)
                    }
                    _ => Err(StanzaError::bad_request(
                        "the form must be submit or cancel",
                    )),
                }
            }
            (Some("set"), [d]) if d.is("destroy", ns::MUC_OWNER) => {
                let alternate = match d.attr("jid") {
                    Some(j) => Some(
                        Jid::new(j)
                            .map_err(|_| StanzaError::new(Condition::JidMalformed))?
                            .to_string(),
                    ),
                    None => None,
                };
                let text = |name: &str| d.get_child(name, ns::MUC_OWNER).map(|e| e.text());
                self.destroy(alternate, text("reason"), text("password"))
                    .await?;
                Ok(None)
            }
            _ => Err(StanzaError::bad_request("unknown muc#owner request")),
        }
    }

    /// §10.1.2–§10.2: apply a submitted form and unlock the room.
    async fn configure(&mut self, form: &Form) -> IqResult {
        let new = self.apply_form(form)?;
        let old = self.config.clone();
        let was_locked = self.locked;
        self.save_settings(&new, false).await?;
        self.config = new.clone();
        self.locked = false;
        self.lock_deadline = None;
        // What follows reaches occupants after the owner's result.
        self.defer();
        if !was_locked {
            self.notify_config_change(&old, &new);
        }
        // §10.2: the room became members-only: non-members leave (322).
        if new.members_only && !old.members_only {
            let outsiders: Vec<String> = self
                .occupants
                .iter()
                .filter(|o| self.affiliation_of(&o.bare) < Affiliation::Member)
                .map(|o| o.nick.clone())
                .collect();
            for nick in outsiders {
                self.remove_occupant(
                    &nick,
                    &Notice {
                        codes: vec![322],
                        ..Notice::unavailable()
                    },
                );
            }
        }
        self.after_departure().await;
        Ok(None)
    }

    /// Write the room's settings to storage.
    pub(super) async fn save_settings(
        &self,
        config: &RoomConfig,
        locked: bool,
    ) -> Result<(), StanzaError> {
        let settings = Settings {
            locked,
            salt: self.salt.clone(),
            config: config.clone(),
            vcard: self.vcard.as_ref().map(|v| v.xml.clone()),
        };
        self.shared
            .rooms_store
            .put_room(&self.jid, config.persistent, &settings.to_text())
            .await
            .map_err(|e| {
                tracing::error!(room = %self.jid, error = %e, "storing the room failed");
                StanzaError::internal()
            })
    }

    /// §10.2.1: tell occupants what changed (170–173 for privacy, 104 for
    /// anything else).
    fn notify_config_change(&self, old: &RoomConfig, new: &RoomConfig) {
        let mut codes = Vec::new();
        if old.archiving != new.archiving {
            codes.push(if new.archiving { 170 } else { 171 });
        }
        if old.whois != new.whois {
            codes.push(if new.non_anonymous() { 172 } else { 173 });
        }
        let mut rest = old.clone();
        rest.archiving = new.archiving;
        rest.whois = new.whois;
        if rest != *new {
            codes.push(104);
        }
        if codes.is_empty() {
            return;
        }
        let id = roost_proto::id::random_token(12);
        let mut x = Element::bare("x", ns::MUC_USER);
        for code in &codes {
            x.append_child(super::occupant::status(*code));
        }
        let m = Element::bare("message", ns::CLIENT)
            .attr_set("type", "groupchat")
            .attr_set("id", id)
            .attr_set("from", self.jid.as_str())
            .child(x);
        for occ in self.occupants.iter() {
            self.send_to_occupant(occ, &m);
        }
    }

    /// §10.9: everyone leaves with the reason and alternate venue, and the
    /// room, its affiliations and archive are gone.
    pub(super) async fn destroy(
        &mut self,
        alternate: Option<String>,
        reason: Option<String>,
        password: Option<String>,
    ) -> Result<(), StanzaError> {
        let mut d = Element::bare("destroy", ns::MUC_USER).attr_opt("jid", alternate);
        if let Some(r) = reason {
            d.append_child(Element::bare("reason", ns::MUC_USER).text_node(r));
        }
        if let Some(p) = password {
            d.append_child(Element::bare("password", ns::MUC_USER).text_node(p));
        }
        // §10.9 example: affiliation and role are both "none" now.
        self.affiliations.clear();
        let occupants = std::mem::take(&mut self.occupants);
        let notice = Notice {
            destroy: Some(d),
            ..Notice::unavailable()
        };
        for mut occ in occupants.into_occupants() {
            occ.role = Role::None;
            // One presence per occupant, from its own nick (no broadcast).
            for jid in occ.jids() {
                self.send(self.presence_of(&occ, jid, Role::None, false, &notice));
            }
        }
        self.forget().await
    }

    /// Remove the room from storage and from memory.
    pub(super) async fn forget(&mut self) -> Result<(), StanzaError> {
        let removed = self.shared.rooms_store.remove_room(&self.jid).await;
        let archive = self.shared.archive.remove_archive(&self.jid).await;
        self.reset();
        if let Err(e) = removed.map(drop).and(archive) {
            tracing::error!(room = %self.jid, error = %e, "removing the room failed");
            return Err(StanzaError::internal());
        }
        tracing::debug!(room = %self.jid, "room removed");
        Ok(())
    }

    /// Whether `jid` may create rooms (§10.1.1).
    pub(super) fn may_create(&self, jid: &BareJid) -> bool {
        let service = &self.shared.config;
        let local = jid.node().is_some() && jid.domain().as_str() == self.shared.host;
        if service.restrict_room_creation {
            return service
                .room_creators
                .iter()
                .any(|c| BareJid::new(c).is_ok_and(|c| &c == jid));
        }
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_text() {
        let mut s = Settings {
            locked: true,
            salt: "s4lt".into(),
            config: RoomConfig::new(&MucConfig::default()),
            vcard: Some("<vCard xmlns='vcard-temp'/>".into()),
        };
        s.config.name = "A Dark \"Cave\" ☕".into();
        s.config.password = Some("cauldronburn".into());
        s.config.whois = Whois::Anyone;
        s.config.allow_pm = AllowPm::Moderators;
        let back = Settings::parse(&s.to_text());
        assert!(back.locked);
        assert_eq!(back.salt, "s4lt");
        assert_eq!(back.vcard, s.vcard);
        assert_eq!(back.config, s.config);
    }

    #[test]
    fn unreadable_settings_fall_back_to_defaults() {
        let s = Settings::parse("this is [not toml");
        assert!(!s.locked);
        assert_eq!(s.config, RoomConfig::default());
    }

    #[test]
    fn private_messages_follow_allowpm() {
        assert!(AllowPm::Anyone.allows(Role::Visitor));
        assert!(!AllowPm::Participants.allows(Role::Visitor));
        assert!(AllowPm::Participants.allows(Role::Participant));
        assert!(!AllowPm::Moderators.allows(Role::Participant));
        assert!(!AllowPm::None.allows(Role::Moderator));
    }
}
