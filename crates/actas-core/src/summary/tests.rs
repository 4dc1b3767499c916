use super::*;
use crate::Timestamp;
use crate::account::{AccountRef, Consent};
use crate::event::{Actor, EventData, FieldChange};
use crate::ids::{AccountId, RequestId, SessionId, StaffId};
use crate::policy::Policy;
use crate::scope::{Mode, Risk};
use crate::staff::{DisplayName, Email, Role, StaffRef};
use crate::text::{Note, Reason, TicketRef};

fn sarah() -> StaffRef {
    StaffRef {
        id: StaffId::new(1).expect("id"),
        email: Email::parse("sarah.lee@example.com").expect("email"),
        name: DisplayName::parse("Sarah Lee").expect("name"),
    }
}

fn dana() -> StaffRef {
    StaffRef {
        id: StaffId::new(2).expect("id"),
        email: Email::parse("dana@example.com").expect("email"),
        name: DisplayName::parse("Dana Park").expect("name"),
    }
}

fn acme() -> AccountRef {
    AccountRef {
        id: AccountId::parse("acme").expect("id"),
        name: DisplayName::parse("Acme Co").expect("name"),
    }
}

fn ticket() -> TicketRef {
    TicketRef::parse("#4821", &Policy::starter().ticket_pattern).expect("ticket")
}

fn reason() -> Reason {
    Reason::parse("Check invoice tax rate after plan change").expect("reason")
}

fn say(actor: Actor, data: EventData) -> String {
    summarize(&actor, &data)
}

fn ended(reason: EndReason, limit: Option<u64>, actor: Actor) -> String {
    say(
        actor,
        EventData::SessionEnded {
            session: SessionId::random(),
            staff: sarah(),
            account: acme(),
            ticket: ticket(),
            reason,
            limit_minutes: limit,
        },
    )
}

#[test]
fn signed_action_sentences() {
    let city = || FieldChange {
        field: "city".into(),
        from: Some("York".into()),
        to: Some("Leeds".into()),
    };
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::ActionHeld {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                action: "a1".into(),
                description: "changed the postal address".into(),
                changes: vec![city()],
                path: "/address".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, asked to make a change that must be confirmed and signed (changed the postal address), setting the city from York to Leeds; it was held, not sent, until they confirm it"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::SignedAction {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                action: "a1".into(),
                description: "changed the postal address".into(),
                changes: vec![city()],
                method: "POST".into(),
                path: "/address".into(),
                body_sha256: String::new(),
                confirmed_with: "their password".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, confirmed a change after proving who they are with their password, and it was sent with a signed receipt (changed the postal address) setting the city from York to Leeds"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::ActionNotConfirmed {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                action: "a1".into(),
                description: "changed the postal address".into(),
                tried_with: "a new sign-in at Okta".into(),
                reason: "Okta answered “access_denied” instead of signing them in".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, tried to confirm a held change (changed the postal address) with a new sign-in at Okta, but it was not confirmed: Okta answered “access_denied” instead of signing them in; it stays held, not sent"
    );
}

#[test]
fn session_sentences() {
    let scope = Policy::starter().scope(["edit_settings"]).expect("scope");
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::SessionStarted {
                session: SessionId::random(),
                request: RequestId::random(),
                account: acme(),
                ticket: ticket(),
                reason: reason(),
                scope,
                mode: Mode::Live,
                expires_at: Timestamp::from_millis(0),
            }
        ),
        "Sarah Lee started a support session on Acme Co for ticket #4821: “Check invoice tax rate after plan change”"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::ActionTaken {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                description: "changed the tax settings".into(),
                changes: vec![FieldChange {
                    field: "tax rate".into(),
                    from: Some("20%".into()),
                    to: Some("10%".into())
                }],
                status: Some(200),
                path: None,
            }
        ),
        "Sarah Lee, acting as Acme Co, changed the tax rate from 20% to 10%"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::ActionTaken {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                description: "changed the tax settings".into(),
                changes: vec![
                    FieldChange {
                        field: "tax rate".into(),
                        from: Some("20%".into()),
                        to: Some("10%".into())
                    },
                    FieldChange {
                        field: "currency".into(),
                        from: Some("EUR".into()),
                        to: Some("GBP".into())
                    },
                ],
                status: None,
                path: None,
            }
        ),
        "Sarah Lee, acting as Acme Co, sent a change (changed the tax settings) setting the tax rate from 20% to 10% and the currency from EUR to GBP"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::ActionTaken {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                description: "changed the tax settings".into(),
                changes: vec![],
                status: Some(422),
                path: None,
            }
        ),
        "Sarah Lee, acting as Acme Co, tried to make a change (changed the tax settings), but the product refused it (status 422)"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::PageViewed {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                path: "/loans/LA-77".into(),
                description: "viewed loan LA-77".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, viewed loan LA-77"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::ActionBlocked {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                method: "GET".into(),
                path: "/transactions/export.csv".into(),
                capability: None,
                why: "exports need the export capability, which this session does not have".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, was blocked from GET /transactions/export.csv: exports need the export capability, which this session does not have"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::DataRead {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                method: "GET".into(),
                path: "/api/profile".into(),
                description: "read /api/profile".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, read /api/profile"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::LiveMessage {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                path: "/chat".into(),
                bytes: 30,
                fields: vec![FieldChange {
                    field: "text".into(),
                    from: None,
                    to: Some("hello".into()),
                }],
            }
        ),
        "Sarah Lee, acting as Acme Co, sent a message on the live connection to /chat setting the text to hello"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::AnswerRefused {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                method: "GET".into(),
                path: "/statement".into(),
                why: "it was a download, and downloads need an approved export scope".into(),
            }
        ),
        "Sarah Lee, acting as Acme Co, was not shown the answer to GET /statement: it was a download, and downloads need an approved export scope"
    );
}

#[test]
fn every_end_reason_reads_plainly() {
    let sys = || Actor::System;
    assert_eq!(
        ended(EndReason::IdleLimit, Some(15), sys()),
        "Sarah Lee's session on Acme Co ended: idle for 15 minutes"
    );
    assert_eq!(
        ended(EndReason::HardLimit, Some(30), sys()),
        "Sarah Lee's session on Acme Co ended: it reached its 30-minute limit"
    );
    assert_eq!(
        ended(EndReason::Manual, None, Actor::Staff(sarah())),
        "Sarah Lee's session on Acme Co ended: Sarah Lee ended it"
    );
    assert_eq!(
        ended(EndReason::ConsentRevoked, None, Actor::Customer(acme())),
        "Sarah Lee's session on Acme Co ended: Acme Co revoked consent"
    );
    assert_eq!(
        ended(EndReason::RevokedByAdmin, None, Actor::Staff(dana())),
        "Sarah Lee's session on Acme Co ended: Dana Park ended it"
    );
    assert_eq!(
        ended(EndReason::StaffDisabled, None, sys()),
        "Sarah Lee's session on Acme Co ended: Sarah Lee's staff account was deactivated"
    );
    assert_eq!(
        ended(EndReason::ScopeChanged, None, Actor::Staff(sarah())),
        "Sarah Lee's session on Acme Co ended: the scope changed, so the work continues in a new session"
    );
}

#[test]
fn request_sentences() {
    let p = Policy::starter();
    let scope = p.scope(["edit_settings"]).expect("scope");
    let id = RequestId::random();
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::RequestCreated {
                request: id,
                account: acme(),
                ticket: ticket(),
                reason: reason(),
                scope: scope.clone(),
                minutes: 15,
                mode: Mode::ReadOnly,
                risk: Risk::Medium,
                for_session: None,
            }
        ),
        "Sarah Lee asked to act as Acme Co for ticket #4821 (edit_settings, view; 15 minutes, read-only): “Check invoice tax rate after plan change”"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::RequestCreated {
                request: id,
                account: acme(),
                ticket: ticket(),
                reason: reason(),
                scope: scope.clone(),
                minutes: 15,
                mode: Mode::Live,
                risk: Risk::Medium,
                for_session: Some(SessionId::random()),
            }
        ),
        "Sarah Lee asked to change the scope of the session on Acme Co for ticket #4821 to edit_settings, view (15 minutes, live): “Check invoice tax rate after plan change”"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::RequestApproved {
                request: id,
                requester: sarah(),
                account: acme(),
                ticket: ticket(),
                scope: scope.clone(),
                minutes: 10,
                by_policy: false,
                note: None,
            }
        ),
        "Dana Park approved Sarah Lee's request to act as Acme Co for ticket #4821 (edit_settings, view; 10 minutes)"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::RequestApproved {
                request: id,
                requester: sarah(),
                account: acme(),
                ticket: ticket(),
                scope: p.scope([]).expect("scope"),
                minutes: 15,
                by_policy: true,
                note: None,
            }
        ),
        "Policy approved Sarah Lee's request to act as Acme Co for ticket #4821 (view; 15 minutes): low risk on a normal account"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::RequestDenied {
                request: id,
                requester: sarah(),
                account: acme(),
                ticket: ticket(),
                note: Note::parse("Ask the customer for a screenshot first").expect("note"),
            }
        ),
        "Dana Park denied Sarah Lee's request to act as Acme Co for ticket #4821: “Ask the customer for a screenshot first”"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::RequestCancelled {
                request: id,
                account: acme(),
                ticket: ticket()
            }
        ),
        "Sarah Lee cancelled the request to act as Acme Co for ticket #4821"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::RequestExpired {
                request: id,
                requester: sarah(),
                account: acme(),
                ticket: ticket()
            }
        ),
        "Sarah Lee's request to act as Acme Co for ticket #4821 expired before it was used"
    );
}

#[test]
fn staff_and_allow_list_sentences() {
    let why = Note::parse("Joined the billing support rota").expect("note");
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::StaffAdded {
                staff: sarah(),
                role: Role::Agent
            }
        ),
        "Dana Park added Sarah Lee (sarah.lee@example.com) as an agent"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::StaffAdded {
                staff: dana(),
                role: Role::Director
            }
        ),
        "Dana Park (dana@example.com) was added as a director"
    );
    assert_eq!(
        say(Actor::System, EventData::StaffDisabled { staff: sarah() }),
        "Sarah Lee (sarah.lee@example.com) was deactivated"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::AllowGranted {
                staff: sarah(),
                max_risk: Risk::Medium,
                reason: why.clone()
            }
        ),
        "Dana Park allowed Sarah Lee to act as customers up to medium risk: “Joined the billing support rota”"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::AllowRevoked {
                staff: sarah(),
                reason: why
            }
        ),
        "Dana Park removed Sarah Lee from the allow-list: “Joined the billing support rota”"
    );
}

#[test]
fn consent_sentences() {
    let c = |consent| {
        say(
            Actor::Customer(acme()),
            EventData::ConsentChanged {
                account: acme(),
                consent,
                via: None,
            },
        )
    };
    assert_eq!(
        c(Consent::Revoked),
        "Acme Co revoked consent for support staff to act on the account"
    );
    assert_eq!(
        c(Consent::Allowed),
        "Acme Co allowed support staff to act on the account"
    );
    assert_eq!(
        c(Consent::CodeRequired),
        "Acme Co asked that support staff need a confirmation code for every session"
    );
}

#[test]
fn account_and_code_sentences() {
    use crate::account::AccountFlag;
    let flags = vec![AccountFlag::parse("sensitive").expect("flag")];
    assert_eq!(
        say(
            Actor::System,
            EventData::AccountUpdated {
                account: acme(),
                flags: flags.clone(),
                created: true,
                removed: vec![],
            }
        ),
        "actas added the account Acme Co (acme; flags: sensitive)"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::AccountUpdated {
                account: acme(),
                flags: vec![],
                created: false,
                removed: vec![],
            }
        ),
        "Dana Park updated the account Acme Co (acme; no flags)"
    );
    assert_eq!(
        say(
            Actor::App(portal()),
            EventData::AccountUpdated {
                account: acme(),
                flags: vec![],
                created: false,
                removed: flags.clone(),
            }
        ),
        "the product (app portal) updated the account Acme Co (acme; no flags; removed: sensitive)"
    );
    assert_eq!(
        say(
            Actor::Customer(acme()),
            EventData::CodeIssued {
                account: acme(),
                expires_at: Timestamp::parse("2026-11-23T10:25:00Z").expect("time"),
                via: Some(portal()),
            }
        ),
        "Acme Co made a one-time confirmation code for support staff, valid until 10:25 UTC"
    );
    let id = RequestId::random();
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::CodeAccepted {
                request: id,
                account: acme(),
                ticket: ticket()
            }
        ),
        "Sarah Lee entered Acme Co's confirmation code for ticket #4821"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::CodeRejected {
                request: id,
                account: acme(),
                ticket: ticket(),
                failures: 2,
                locked: false
            }
        ),
        "Sarah Lee entered a wrong confirmation code for Acme Co (ticket #4821); 3 tries left"
    );
    assert_eq!(
        say(
            Actor::Staff(sarah()),
            EventData::CodeRejected {
                request: id,
                account: acme(),
                ticket: ticket(),
                failures: 5,
                locked: true
            }
        ),
        "Sarah Lee entered a wrong confirmation code for Acme Co (ticket #4821) for the 5th time; the request is now locked"
    );
}

#[test]
fn sign_in_sentences() {
    let s = |data| say(Actor::Staff(sarah()), data);
    assert_eq!(
        s(EventData::SignedIn {
            staff: sarah(),
            through: None
        }),
        "Sarah Lee signed in"
    );
    assert_eq!(
        s(EventData::SignedIn {
            staff: sarah(),
            through: Some("Okta".into())
        }),
        "Sarah Lee signed in through Okta"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::SignInRefused {
                through: "Okta".into(),
                who: Some("eve@example.com".into()),
                reason: "eve@example.com is not a staff member here".into(),
            }
        ),
        "Okta signed in eve@example.com, but actas refused them: eve@example.com is not a staff member here"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::RoleChanged {
                staff: sarah(),
                from: Role::Agent,
                to: Role::Lead,
                through: "Okta".into(),
            }
        ),
        "Sarah Lee is now a lead (was an agent), following their groups at Okta"
    );
    assert_eq!(
        s(EventData::SignedOut { staff: sarah() }),
        "Sarah Lee signed out"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::SignInFailed {
                staff: sarah(),
                failures: 2,
                locked_minutes: None
            }
        ),
        "Someone gave a wrong password for Sarah Lee (sarah.lee@example.com); 2 in a row"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::SignInFailed {
                staff: sarah(),
                failures: 5,
                locked_minutes: Some(15)
            }
        ),
        "Someone gave a wrong password for Sarah Lee (sarah.lee@example.com) 5 times in a row; signing in is locked for 15 minutes"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::AssertionKeyRotated {
                old_kid: "0a1b".into(),
                new_kid: "2c3d".into()
            }
        ),
        "Dana Park replaced the key that signs the gateway's assertions (key 0a1b is now 2c3d); the old key stays published until its last assertion expires"
    );
    assert_eq!(
        say(
            Actor::System,
            EventData::LedgerKeyRotated {
                old_key: crate::tree_head::LedgerKey::from_bytes(&[9; 32])
                    .expect("key")
                    .public()
                    .to_base64(),
                new_key: "not a key".into(),
                endorsement: String::new(),
            }
        ),
        "actas replaced the key that signs the ledger: key dbc298251c51321b signed it up to here, key (unreadable) signs it from now on; both stay published, and extracts signed with either still verify"
    );
    assert_eq!(
        s(EventData::LedgerKeyStarted {
            key: crate::tree_head::LedgerKey::from_bytes(&[9; 32])
                .expect("key")
                .public()
                .to_base64(),
        }),
        "Key dbc298251c51321b started signing the ledger"
    );
    assert_eq!(
        s(EventData::TotpEnabled { staff: sarah() }),
        "Sarah Lee turned on two-step sign-in with an authenticator app"
    );
    assert_eq!(
        s(EventData::ApiTokenCreated {
            staff: sarah(),
            name: "laptop".into()
        }),
        "Sarah Lee created a personal API token named “laptop”"
    );
}

fn portal() -> crate::app::AppRef {
    crate::app::AppRef {
        id: 1,
        name: crate::app::AppName::parse("portal").expect("name"),
    }
}

#[test]
fn customer_activity_and_app_key_sentences() {
    use crate::activity::ActivityKind;
    assert_eq!(
        say(
            Actor::Customer(acme()),
            EventData::CustomerActivity {
                account: acme(),
                activity: ActivityKind::parse("agreement_signed").expect("kind"),
                description: "signed the loan agreement LA-77".into(),
                changes: vec![],
                reported_by: portal(),
            }
        ),
        "Acme Co signed the loan agreement LA-77"
    );
    assert_eq!(
        say(
            Actor::Customer(acme()),
            EventData::CustomerActivity {
                account: acme(),
                activity: ActivityKind::parse("profile_edited").expect("kind"),
                description: "changed their profile".into(),
                changes: vec![FieldChange {
                    field: "email".into(),
                    from: Some("s•••@acme.com".into()),
                    to: Some("b•••@acme.com".into()),
                }],
                reported_by: portal(),
            }
        ),
        "Acme Co changed their profile: the email from s•••@acme.com to b•••@acme.com"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::AppKeyCreated {
                app: portal(),
                webhook: Some("https://portal.example.com/hooks/actas".into()),
            }
        ),
        "Dana Park created the app key portal for the product, with session notifications sent to https://portal.example.com/hooks/actas"
    );
    assert_eq!(
        say(
            Actor::Staff(dana()),
            EventData::AppKeyRevoked { app: portal() }
        ),
        "Dana Park revoked the app key portal; the product can no longer use it"
    );
}

#[test]
fn review_sentences() {
    use crate::review::Outcome;
    let review = |outcome, note: Option<&str>| {
        say(
            Actor::Staff(dana()),
            EventData::SessionReviewed {
                session: SessionId::random(),
                staff: sarah(),
                account: acme(),
                ticket: ticket(),
                outcome,
                note: note.map(|n| Note::parse(n).expect("note")),
            },
        )
    };
    assert_eq!(
        review(Outcome::Fine, None),
        "Dana Park reviewed Sarah Lee's session on Acme Co for ticket #4821: fine"
    );
    assert_eq!(
        review(Outcome::FollowUp, Some("Ask why the export was tried")),
        "Dana Park reviewed Sarah Lee's session on Acme Co for ticket #4821: needs follow-up: “Ask why the export was tried”"
    );
}

#[test]
fn kept_page_sentences() {
    use crate::event::KeptPage;
    let page = |n: u64, path: &str, kept: bool, cut_short: bool| KeptPage {
        page: n,
        path: path.into(),
        sha256: "ab".repeat(32),
        bytes: 4800,
        kept,
        cut_short,
    };
    let say_pages = |pages| {
        say(
            Actor::Staff(sarah()),
            EventData::PagesKept {
                session: SessionId::random(),
                account: acme(),
                ticket: ticket(),
                pages,
            },
        )
    };
    assert_eq!(
        say_pages(vec![page(7, "/loans", true, false)]),
        "actas recorded the SHA-256 of 1 page as Sarah Lee saw it (/loans) and kept a masked copy of it"
    );
    assert_eq!(
        say_pages(vec![
            page(7, "/", true, false),
            page(8, "/loans", false, true),
            page(9, "/big", false, false),
        ]),
        "actas recorded the SHA-256 of 3 pages as Sarah Lee saw them (/, /loans and /big) and kept a masked copy of 1 page; 1 page was cut short when the browser stopped reading; 1 page kept no copy, as the session's copies reached the policy's limit"
    );
    let many: Vec<KeptPage> = (1..=6)
        .map(|n| page(n, &format!("/p{n}"), true, false))
        .collect();
    assert_eq!(
        say_pages(many),
        "actas recorded the SHA-256 of 6 pages as Sarah Lee saw them (/p1, /p2, /p3 and 3 more) and kept a masked copy of each"
    );
}
