//! The weekly review (the seed's "review real sessions every week"): ended sessions wait
//! for a lead, flagged ones first; a lead reads the timeline and records a verdict, which
//! is a ledger event; a weekly summary counts what each agent did and where attempts
//! failed again and again. The rules (flags, sample, due dates) are in
//! [`actas_core::review`]; this module reads the facts and writes the verdicts.

use super::access::Lead;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::account::AccountRef;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, SessionId, StaffId};
use actas_core::review::{self, Flag, Outcome, SessionFacts};
use actas_core::session::EndedSession;
use actas_core::staff::StaffRef;
use actas_core::text::{Note, TicketRef};
use actas_store::{Account, Change, EndedForReview, EndedSessions, EventFilter, Unit};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How many ended sessions one queue or summary reads at most.
pub const READ_AT_MOST: u32 = 5000;

/// A lead's verdict on a session, as read back.
#[derive(Debug, Clone)]
pub struct ReviewDone {
    /// Who reviewed it.
    pub reviewer: StaffRef,
    /// The verdict.
    pub outcome: Outcome,
    /// The lead's note.
    pub note: Option<Note>,
    /// When.
    pub at: Timestamp,
}

/// One ended session, as the review queue shows it.
#[derive(Debug, Clone)]
pub struct ReviewItem {
    /// The session.
    pub session: EndedSession,
    /// Whose session it was.
    pub staff: StaffRef,
    /// On which account.
    pub account: AccountRef,
    /// For which ticket.
    pub ticket: TicketRef,
    /// Why it needs a review; empty for a sampled quiet session.
    pub flags: Vec<Flag>,
    /// When its review is due.
    pub due: Timestamp,
    /// Unreviewed past its due date.
    pub overdue: bool,
    /// The reader's own session (another lead reviews it).
    pub own: bool,
    /// The newest review, if any.
    pub review: Option<ReviewDone>,
}

/// The review queue: what waits, overdue and flagged first; what a lead asked to follow
/// up (open until a later review says it is fine); and what was reviewed lately.
#[derive(Debug, Clone)]
pub struct ReviewQueue {
    /// Sessions waiting for a review: overdue first, then flagged, then by due date.
    pub waiting: Vec<ReviewItem>,
    /// How many of them are overdue.
    pub overdue: usize,
    /// Sessions whose newest review asks for a follow-up, oldest first.
    pub follow_ups: Vec<ReviewItem>,
    /// Sessions reviewed that ended in the last review period, newest first.
    pub reviewed: Vec<ReviewItem>,
}

/// One person's (or the team's) week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeekCounts {
    /// Sessions that ended in the week.
    pub sessions: u64,
    /// Changes made in them.
    pub changes: u64,
    /// Blocked attempts in them.
    pub blocks: u64,
    /// Their requests a lead denied.
    pub denied: u64,
    /// Wrong passwords at sign-in.
    pub failed_sign_ins: u64,
    /// Wrong confirmation codes entered.
    pub wrong_codes: u64,
}

impl WeekCounts {
    fn add(&mut self, o: &WeekCounts) {
        self.sessions += o.sessions;
        self.changes += o.changes;
        self.blocks += o.blocks;
        self.denied += o.denied;
        self.failed_sign_ins += o.failed_sign_ins;
        self.wrong_codes += o.wrong_codes;
    }

    /// The failures that piled up, in words ("4 wrong passwords"), empty when none did.
    pub fn repeated_failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (n, one, many) in [
            (self.failed_sign_ins, "wrong password", "wrong passwords"),
            (self.wrong_codes, "wrong code", "wrong codes"),
            (self.blocks, "blocked attempt", "blocked attempts"),
            (self.denied, "denied request", "denied requests"),
        ] {
            if n >= review::REPEATED_FAILURES {
                out.push(actas_core::words::count(n, one, many));
            }
        }
        out
    }
}

/// The weekly summary: Monday to Monday, UTC.
#[derive(Debug, Clone)]
pub struct WeeklySummary {
    /// The week's first moment.
    pub from: Timestamp,
    /// The next week's first moment.
    pub to: Timestamp,
    /// Everyone together.
    pub team: WeekCounts,
    /// Each staff member with anything to count, by name.
    pub people: Vec<(StaffRef, WeekCounts)>,
    /// The week held more than one summary reads ([`READ_AT_MOST`] sessions or
    /// [`EVENTS_AT_MOST`] events of a kind): the counts are a floor, and say so.
    pub incomplete: bool,
}

/// How many events of one kind a weekly summary reads at most.
pub const EVENTS_AT_MOST: u32 = 100_000;

/// How long `/metrics` reuses a count of overdue reviews.
const OVERDUE_FRESH: Duration = Duration::from_secs(30);

const WEEK: Duration = Duration::from_secs(7 * 86_400);

impl Service {
    /// The review queue a lead works through.
    pub async fn review_queue(&self, lead: &Lead) -> ServiceResult<ReviewQueue> {
        let mut queue = self.open_reviews(Timestamp::now()).await?;
        for item in queue
            .waiting
            .iter_mut()
            .chain(queue.follow_ups.iter_mut())
            .chain(queue.reviewed.iter_mut())
        {
            item.own = item.staff.id == lead.staff().id;
        }
        Ok(queue)
    }

    /// How many reviews are overdue, for `/metrics`: counted at most every
    /// [`OVERDUE_FRESH`] (the endpoint needs no sign-in, and the count reads every ended
    /// session), and again after any review.
    pub async fn overdue_reviews(&self) -> ServiceResult<usize> {
        if let Some((at, n)) = *self.lock_overdue()
            && at.elapsed() < OVERDUE_FRESH
        {
            return Ok(n);
        }
        let n = self.open_reviews(Timestamp::now()).await?.overdue;
        *self.lock_overdue() = Some((std::time::Instant::now(), n));
        Ok(n)
    }

    fn lock_overdue(&self) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, usize)>> {
        self.overdue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn open_reviews(&self, now: Timestamp) -> ServiceResult<ReviewQueue> {
        let rules = self.policy.review;
        let since = Timestamp::from_millis(now.as_millis() - rules.within.as_millis() as i64);
        let rows = self
            .store
            .ended_sessions(
                EndedSessions::Open {
                    reviewed_since: since,
                    sample_percent: rules.sample_percent,
                    sensitive_flags: self
                        .policy
                        .sensitive_flags()
                        .map(ToString::to_string)
                        .collect(),
                },
                READ_AT_MOST,
            )
            .await?;
        let mut names = Names::default();
        let (mut waiting, mut follow_ups, mut reviewed) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            let bucket = row.review_bucket;
            let item = self.review_item(row, &mut names, now).await?;
            match &item.review {
                Some(r) if r.outcome == Outcome::FollowUp => follow_ups.push(item),
                Some(_) => reviewed.push(item),
                None if rules.needs_review(&item.flags, bucket) => waiting.push(item),
                None => {}
            }
        }
        waiting.sort_by_key(|i| (!i.overdue, i.flags.is_empty(), i.due));
        reviewed.reverse();
        let overdue = waiting.iter().filter(|i| i.overdue).count();
        Ok(ReviewQueue {
            waiting,
            overdue,
            follow_ups,
            reviewed,
        })
    }

    async fn review_item(
        &self,
        row: EndedForReview,
        names: &mut Names,
        now: Timestamp,
    ) -> ServiceResult<ReviewItem> {
        let rules = self.policy.review;
        let info = &row.session.info;
        let account = names.account(self, &info.account).await?;
        let sensitive = account
            .flags
            .iter()
            .any(|f| self.policy.sensitive_flags().any(|s| s == f));
        let account = account.to_ref();
        let facts = SessionFacts {
            changes: row.changes,
            blocks: row.blocks,
            notes: row.notes,
            scope_changes: row.scope_changes,
            sensitive,
            end_reason: Some(row.session.reason),
        };
        let review = match row.review {
            None => None,
            Some(r) => Some(ReviewDone {
                reviewer: names.staff(self, r.reviewer).await?,
                outcome: r.outcome,
                note: r.note,
                at: r.at,
            }),
        };
        let due = rules.due(row.session.ended_at);
        Ok(ReviewItem {
            staff: names.staff(self, info.staff).await?,
            ticket: row.ticket,
            account,
            flags: review::flags(&facts),
            due,
            overdue: review.is_none() && rules.overdue(row.session.ended_at, now),
            own: false,
            review,
            session: row.session,
        })
    }

    /// Records a lead's verdict on an ended session. A follow-up says what to follow up;
    /// nobody reviews their own session (decided in the transaction).
    pub async fn review_session(
        &self,
        lead: &Lead,
        id: SessionId,
        outcome: &str,
        note: &str,
    ) -> ServiceResult<()> {
        let outcome = Outcome::parse(outcome).map_err(|e| ServiceError::invalid("outcome", e))?;
        let note = match note.trim() {
            "" => None,
            n => Some(Note::parse(n).map_err(|e| ServiceError::invalid("note", e))?),
        };
        review::check_verdict(outcome, note.is_some())
            .map_err(|e| ServiceError::invalid("note", e))?;
        let session = self
            .store
            .session(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no session {id}")))?;
        let info = session.info();
        let staff = self.staff_ref(info.staff).await?;
        let account = self.account(&info.account).await?.to_ref();
        let ticket = self.request(info.request).await?.ticket;
        let event = NewEvent::new(
            Actor::Staff(lead.staff().to_ref()),
            EventData::SessionReviewed {
                session: id,
                staff,
                account,
                ticket,
                outcome,
                note: note.clone(),
            },
        );
        let change = Change::ReviewSession {
            session: id,
            reviewer: lead.staff().id,
            outcome,
            note,
            at: Timestamp::now(),
        };
        self.store
            .commit(Unit::new(vec![change], move |_| vec![event]))
            .await?;
        *self.lock_overdue() = None;
        Ok(())
    }

    /// The week that holds `day`, Monday to Monday UTC: per person and for the team.
    pub async fn weekly_summary(
        &self,
        _lead: &Lead,
        day: Timestamp,
    ) -> ServiceResult<WeeklySummary> {
        let from = review::week_start(day);
        let to = from.plus(WEEK);
        let mut per: HashMap<StaffId, WeekCounts> = HashMap::new();
        let sessions = self
            .store
            .ended_sessions(EndedSessions::EndedBetween(from, to), READ_AT_MOST)
            .await?;
        let mut incomplete = sessions.len() as u32 >= READ_AT_MOST;
        for row in sessions {
            let c = per.entry(row.session.info.staff).or_default();
            c.sessions += 1;
            c.changes += row.changes;
            c.blocks += row.blocks;
        }
        let events = |kind: &'static str| EventFilter {
            kind: Some(kind.into()),
            since: Some(from),
            until: Some(to),
            ..EventFilter::default()
        };
        let read = self
            .store
            .events(&events("request.denied"), 0, EVENTS_AT_MOST)
            .await?;
        incomplete |= read.len() as u32 >= EVENTS_AT_MOST;
        for e in read {
            if let EventData::RequestDenied { requester, .. } = &e.body.data {
                per.entry(requester.id).or_default().denied += 1;
            }
        }
        let read = self
            .store
            .events(&events("staff.sign_in_failed"), 0, EVENTS_AT_MOST)
            .await?;
        incomplete |= read.len() as u32 >= EVENTS_AT_MOST;
        for e in read {
            if let EventData::SignInFailed { staff, .. } = &e.body.data {
                per.entry(staff.id).or_default().failed_sign_ins += 1;
            }
        }
        let read = self
            .store
            .events(&events("code.rejected"), 0, EVENTS_AT_MOST)
            .await?;
        incomplete |= read.len() as u32 >= EVENTS_AT_MOST;
        for e in read {
            if let Actor::Staff(s) = &e.body.actor {
                per.entry(s.id).or_default().wrong_codes += 1;
            }
        }
        let mut team = WeekCounts::default();
        let mut people = BTreeMap::new();
        for (id, counts) in per {
            team.add(&counts);
            let who = self.staff_ref(id).await?;
            people.insert((who.name.to_string(), id), (who, counts));
        }
        Ok(WeeklySummary {
            from,
            to,
            team,
            people: people.into_values().collect(),
            incomplete,
        })
    }
}

/// Names looked up once per page.
#[derive(Default)]
struct Names {
    staff: HashMap<StaffId, StaffRef>,
    accounts: HashMap<AccountId, Account>,
}

impl Names {
    async fn staff(&mut self, service: &Service, id: StaffId) -> ServiceResult<StaffRef> {
        if let Some(s) = self.staff.get(&id) {
            return Ok(s.clone());
        }
        let s = service.staff_ref(id).await?;
        self.staff.insert(id, s.clone());
        Ok(s)
    }

    async fn account(&mut self, service: &Service, id: &AccountId) -> ServiceResult<Account> {
        if let Some(a) = self.accounts.get(id) {
            return Ok(a.clone());
        }
        let a = service.account(id).await?;
        self.accounts.insert(id.clone(), a.clone());
        Ok(a)
    }
}
