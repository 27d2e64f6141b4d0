//! Audit queries: filters over the indexed attributes of entries, a
//! time-of-day / weekday window, and cursor pagination — and the one SQL
//! builder both backends use, so they answer every query alike.

use docket_core::{EntryType, Timestamp};

use crate::col::Col;
use docket_core::index::ATTRIBUTES;
use thiserror::Error;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;
const MINUTES_PER_WEEK: u16 = 7 * 1440;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    Asc,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Inclusive lower bound on `ts`.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on `ts`.
    pub to: Option<Timestamp>,
    pub types: Vec<EntryType>,
    pub agent: Option<String>,
    pub human: Option<String>,
    pub project: Option<String>,
    pub tool: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub outcome: Option<String>,
    pub data_class: Option<String>,
    pub window: Option<TimeWindow>,
    pub order: Order,
    /// Continue after this `seq` (exclusive), in `order`.
    pub after: Option<u64>,
    pub limit: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("bad cursor {0:?}: pass back the next_cursor of a previous page unchanged")]
    Cursor(String),
    #[error("bad {field} {value:?}: {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("limit must be 1 to {MAX_LIMIT}")]
    Limit,
}

fn field_err(field: &'static str, value: &str, expected: &'static str) -> QueryError {
    QueryError::Field {
        field,
        value: value.chars().take(80).collect(),
        expected,
    }
}

impl Query {
    /// Filters on single-valued attributes, in the order of
    /// [`docket_core::index::ATTRIBUTES`].
    pub fn attributes(&self) -> [Option<&str>; 7] {
        [
            self.agent.as_deref(),
            self.human.as_deref(),
            self.project.as_deref(),
            self.tool.as_deref(),
            self.provider.as_deref(),
            self.model.as_deref(),
            self.outcome.as_deref(),
        ]
    }

    pub fn cursor_for(&self, last_seq: u64) -> String {
        match self.order {
            Order::Desc => format!("d{last_seq}"),
            Order::Asc => format!("a{last_seq}"),
        }
    }

    /// Applies a cursor from a previous page of the same query.
    pub fn set_cursor(&mut self, cursor: &str) -> Result<(), QueryError> {
        let bad = || QueryError::Cursor(cursor.chars().take(80).collect());
        let (order, seq) = match cursor.split_at_checked(1) {
            Some(("d", n)) => (Order::Desc, n),
            Some(("a", n)) => (Order::Asc, n),
            _ => return Err(bad()),
        };
        if order != self.order || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // Seqs are stored as signed 64-bit integers.
        let after: u64 = seq.parse().map_err(|_| bad())?;
        if after > i64::MAX as u64 {
            return Err(bad());
        }
        self.after = Some(after);
        Ok(())
    }

    pub fn effective_limit(&self) -> Result<u32, QueryError> {
        match self.limit {
            0 => Ok(DEFAULT_LIMIT),
            n if n <= MAX_LIMIT => Ok(n),
            _ => Err(QueryError::Limit),
        }
    }
}

/// A set of minutes of the week (UTC), as sorted half-open ranges.
/// Built from local days and hours with a fixed UTC offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    pub ranges: Vec<(u16, u16)>,
}

impl TimeWindow {
    /// `days` like `mon-fri` or `sat,sun`; `hours` like `08:00-18:00`;
    /// `outside` selects the complement; `offset` like `+02:00` or `Z`.
    pub fn parse(
        days: Option<&str>,
        hours: Option<&str>,
        outside: bool,
        offset: Option<&str>,
    ) -> Result<Self, QueryError> {
        let day_set = match days {
            Some(d) => parse_days(d)?,
            None => [true; 7],
        };
        let (h_from, h_to) = match hours {
            Some(h) => parse_hours(h)?,
            None => (0, 1440),
        };
        let offset = match offset {
            Some(o) => parse_offset(o)?,
            None => 0,
        };
        let mut local = vec![false; usize::from(MINUTES_PER_WEEK)];
        for (day, on) in day_set.iter().enumerate() {
            if !on {
                continue;
            }
            for m in h_from..h_to {
                local[day * 1440 + usize::from(m)] = true;
            }
        }
        if outside {
            local.iter_mut().for_each(|b| *b = !*b);
        }
        // local = utc + offset, so the UTC minute u is in the window when
        // local[(u + offset) mod week] is.
        let week = i32::from(MINUTES_PER_WEEK);
        let utc: Vec<bool> = (0..week)
            .map(|u| local[(u + offset).rem_euclid(week) as usize])
            .collect();
        let mut ranges = Vec::new();
        let mut start = None;
        for (m, on) in utc.iter().chain(std::iter::once(&false)).enumerate() {
            match (on, start) {
                (true, None) => start = Some(m as u16),
                (false, Some(s)) => {
                    ranges.push((s, m as u16));
                    start = None;
                }
                _ => {}
            }
        }
        Ok(Self { ranges })
    }

    pub fn contains(&self, minute_of_week: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(a, b)| a <= minute_of_week && minute_of_week < b)
    }
}

fn parse_days(s: &str) -> Result<[bool; 7], QueryError> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let expected = "days like mon-fri or sat,sun";
    let day = |d: &str| {
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(d.trim()))
            .ok_or_else(|| field_err("days", s, expected))
    };
    let mut set = [false; 7];
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    set[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set[day(part)?] = true,
        }
    }
    Ok(set)
}

/// `HH:MM` with exactly two ASCII digits each, as (hours, minutes).
fn hh_mm(t: &str) -> Option<(u16, u16)> {
    let (h, m) = t.split_once(':')?;
    let two = |d: &str| -> Option<u16> {
        if d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()) {
            d.parse().ok()
        } else {
            None
        }
    };
    Some((two(h)?, two(m)?))
}

fn parse_hours(s: &str) -> Result<(u16, u16), QueryError> {
    let expected = "hours like 08:00-18:00 (from before to, 00:00 to 24:00)";
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = hh_mm(t.trim())?;
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then(|| h * 60 + m)
    };
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| field_err("hours", s, expected))?;
    match (minute(a), minute(b)) {
        (Some(a), Some(b)) if a < b => Ok((a, b)),
        _ => Err(field_err("hours", s, expected)),
    }
}

fn parse_offset(s: &str) -> Result<i32, QueryError> {
    let expected = "a UTC offset like +02:00, -05:30 or Z";
    if s == "Z" || s == "z" {
        return Ok(0);
    }
    let sign = match s.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(field_err("tz", s, expected)),
    };
    match hh_mm(&s[1..]) {
        Some((h, m)) if h <= 14 && m < 60 => Ok(sign * i32::from(h * 60 + m)),
        _ => Err(field_err("tz", s, expected)),
    }
}

/// A bound SQL parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Int(i64),
    Text(String),
}

/// How a backend spells a positional parameter (1-based).
pub type Placeholder = fn(usize) -> String;

/// SQL for a page and for a count, with their parameters.
#[derive(Clone, Debug)]
pub struct SqlQuery {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

struct Builder {
    ph: Placeholder,
    params: Vec<SqlValue>,
    conds: Vec<String>,
}

impl Builder {
    fn bind(&mut self, v: SqlValue) -> String {
        self.params.push(v);
        (self.ph)(self.params.len())
    }

    /// `(SELECT id FROM names WHERE name = ?)`
    fn name_id(&mut self, name: &str) -> String {
        let p = self.bind(SqlValue::Text(name.to_owned()));
        format!("(SELECT id FROM names WHERE name = {p})")
    }
}

/// Which part of the log a query reads: below the postings watermark the
/// secondary indexes (postings) drive it; at and above it, the few entries
/// whose postings are not yet written are scanned by `seq`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Indexed,
    Tail,
}

/// The parts of `[lo, hi)` to read, in the order the query returns them.
pub fn plan(q: &Query, (lo, hi): (u64, u64), watermark: u64) -> Vec<(Part, (u64, u64))> {
    let mid = watermark.clamp(lo, hi);
    let mut parts = vec![(Part::Indexed, (lo, mid)), (Part::Tail, (mid, hi))];
    if q.order == Order::Desc {
        parts.reverse();
    }
    parts.retain(|(_, (a, b))| a < b);
    parts
}

/// The filter whose postings drive an indexed query: the most selective
/// one present.
fn driver(q: &Query) -> Option<(Col, &str)> {
    [
        (Col::Agent, q.agent.as_deref()),
        (Col::Human, q.human.as_deref()),
        (Col::Tool, q.tool.as_deref()),
        (Col::DataClass, q.data_class.as_deref()),
        (Col::Model, q.model.as_deref()),
        (Col::Project, q.project.as_deref()),
        (Col::Provider, q.provider.as_deref()),
        (Col::Outcome, q.outcome.as_deref()),
        (
            Col::Type,
            if q.types.len() == 1 {
                Some(q.types[0].as_str())
            } else {
                None
            },
        ),
    ]
    .into_iter()
    .find_map(|(c, v)| v.map(|v| (c, v)))
}

/// Builds the page (`count = false`) or count query for one part of `q`
/// over `[lo, hi)`, returning at most `limit` rows.
///
/// Attribute values are interned in `names`. An indexed part with a filter
/// reads `postings (col, val, seq, mow)` in key order — no sort, however
/// many entries match — and joins the entries; other filters test the
/// entry's own columns.
pub fn build_sql(
    q: &Query,
    part: Part,
    (lo, hi): (u64, u64),
    count: bool,
    limit: u32,
    ph: Placeholder,
) -> SqlQuery {
    let mut b = Builder {
        ph,
        params: Vec::new(),
        conds: Vec::new(),
    };
    let drive = if part == Part::Indexed {
        driver(q)
    } else {
        None
    };
    let d = if drive.is_some() { "p" } else { "e" };
    let lo_p = b.bind(SqlValue::Int(lo as i64));
    let hi_p = b.bind(SqlValue::Int(hi as i64));
    b.conds
        .push(format!("{d}.seq >= {lo_p} AND {d}.seq < {hi_p}"));
    if let Some((col, value)) = drive {
        let id = b.name_id(value);
        b.conds
            .push(format!("p.col = {} AND p.val = {id}", col as i16));
    }
    if let Some(after) = q.after {
        let p = b.bind(SqlValue::Int(after as i64));
        let op = if q.order == Order::Desc { "<" } else { ">" };
        b.conds.push(format!("{d}.seq {op} {p}"));
    }
    if let Some(w) = &q.window {
        if w.ranges.is_empty() {
            b.conds.push("1 = 0".into());
        } else {
            let parts: Vec<String> = w
                .ranges
                .iter()
                .map(|&(a, z)| format!("({d}.mow >= {a} AND {d}.mow < {z})"))
                .collect();
            b.conds.push(format!("({})", parts.join(" OR ")));
        }
    }
    // Filters tested on the entry row itself.
    let mut entry_conds = 0;
    let skip = |c: Col| drive.is_some_and(|(dc, _)| dc == c);
    if !q.types.is_empty() && !skip(Col::Type) {
        let list: Vec<String> = q
            .types
            .iter()
            .map(|t| b.bind(SqlValue::Text(t.as_str().to_owned())))
            .collect();
        b.conds.push(format!(
            "e.type IN (SELECT id FROM names WHERE name IN ({}))",
            list.join(", ")
        ));
        entry_conds += 1;
    }
    let attrs = Col::ATTRIBUTES
        .into_iter()
        .zip(ATTRIBUTES)
        .zip(q.attributes());
    for ((col, name), val) in attrs {
        if let Some(v) = val
            && !skip(col)
        {
            let id = b.name_id(v);
            b.conds.push(format!("e.{name} = {id}"));
            entry_conds += 1;
        }
    }
    if let Some(class) = &q.data_class
        && !skip(Col::DataClass)
    {
        // `classes` holds the entry's class ids as ",12,40,".
        let id = b.name_id(class);
        b.conds
            .push(format!("e.classes LIKE ('%,' || {id} || ',%')"));
        entry_conds += 1;
    }
    let from = match (drive.is_some(), count && entry_conds == 0) {
        (true, true) => "postings p",
        (true, false) => "postings p JOIN entries e ON e.seq = p.seq",
        (false, _) => "entries e",
    };
    let where_ = b.conds.join(" AND ");
    let sql = if count {
        format!("SELECT count(*) FROM {from} WHERE {where_}")
    } else {
        let dir = if q.order == Order::Desc {
            "DESC"
        } else {
            "ASC"
        };
        if drive.is_some() {
            format!(
                "SELECT e.seq, e.data FROM {from} WHERE {where_} ORDER BY p.col {dir}, p.val {dir}, p.seq {dir} LIMIT {limit}"
            )
        } else {
            format!(
                "SELECT e.seq, e.data FROM {from} WHERE {where_} ORDER BY e.seq {dir} LIMIT {limit}"
            )
        }
    };
    SqlQuery {
        sql,
        params: b.params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_office_hours_in_utc() {
        let w = TimeWindow::parse(Some("mon-fri"), Some("08:00-18:00"), false, None).unwrap();
        assert_eq!(w.ranges.len(), 5);
        assert_eq!(w.ranges[0], (480, 1080));
        assert!(w.contains(4 * 1440 + 17 * 60 + 59));
        assert!(!w.contains(5 * 1440 + 9 * 60));
    }

    #[test]
    fn outside_hours_with_an_offset_wraps_the_week() {
        // 08:00-18:00 at +02:00 is 06:00-16:00 UTC.
        let w =
            TimeWindow::parse(Some("mon-fri"), Some("08:00-18:00"), true, Some("+02:00")).unwrap();
        assert!(w.contains(0)); // Monday 00:00 UTC = 02:00 local: outside hours.
        assert!(!w.contains(6 * 60)); // Monday 06:00 UTC = 08:00 local.
        assert!(w.contains(16 * 60)); // 18:00 local.
        assert!(w.contains(7 * 1440 - 1)); // Sunday 23:59 UTC is Monday 01:59 local.
        let total: u32 = w.ranges.iter().map(|&(a, b)| u32::from(b - a)).sum();
        assert_eq!(total, 7 * 1440 - 5 * 600);
    }

    #[test]
    fn bad_window_parts_say_what_is_wrong() {
        let e = TimeWindow::parse(Some("mon-fry"), None, false, None).unwrap_err();
        assert!(e.to_string().contains("days"), "{e}");
        assert!(TimeWindow::parse(None, Some("18:00-08:00"), false, None).is_err());
        assert!(TimeWindow::parse(None, Some("8-18"), false, None).is_err());
        assert!(TimeWindow::parse(None, None, false, Some("+25:00")).is_err());
        // Hostile values are refused, never overflow.
        for hours in [
            "9999:00-10:00",
            "08:00-99999:00",
            "8:00-18:00",
            "08:0-18:00",
            "+8:00-18:00",
        ] {
            assert!(
                TimeWindow::parse(None, Some(hours), false, None).is_err(),
                "{hours}"
            );
        }
        for tz in [
            "+-99999999:00",
            "+-5:00",
            "++3:00",
            "+00:-30",
            "+5:00",
            "+05:60",
            "+99:00",
            "-",
        ] {
            assert!(
                TimeWindow::parse(None, None, false, Some(tz)).is_err(),
                "{tz}"
            );
        }
        assert!(TimeWindow::parse(None, None, false, Some("-05:30")).is_ok());
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let mut q = Query::default();
        let c = q.cursor_for(41);
        q.set_cursor(&c).unwrap();
        assert_eq!(q.after, Some(41));
        for junk in [
            "",
            "d",
            "x41",
            "d-1",
            "d4 1",
            "a41",
            "d99999999999999999999999",
            "d9223372036854775808",
        ] {
            assert!(Query::default().set_cursor(junk).is_err(), "{junk}");
        }
    }
}
