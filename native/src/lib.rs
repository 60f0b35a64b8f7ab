//! ESN Pulse's compiled fold core.
//!
//! `fold_batch` reads one partition's raw Kafka records and folds every *plainly valid* one as
//! `stream.decode.decode_activity` followed by `PartitionDelta.add` would, then writes fold.lua's
//! payload. Whatever it is not sure of (any escape or non-ASCII byte, a
//! CloudEvents envelope, nested values, odd numbers, a time outside the bounds, a person URN,
//! a key that does not match) it leaves to the Python gate by returning the record's index: the
//! Python path stays the definition of the contract and words every rejection. So this core may
//! only accept what the Python path accepts, with the same result; the test suite holds the two
//! to that over generated, odd and hostile records.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// stream.events.EVENT_TYPES then OTHER: the order of the per-user counts.
const COUNTED_TYPES: [&str; 13] = [
    "login", "view", "post", "comment", "like", "mention", "follow", "join", "leave", "edit",
    "upload", "share", "other",
];
const OTHER: usize = 12;
const OBJECT_TYPES: [&str; 8] = [
    "post", "comment", "blog", "forum_topic", "wiki_page", "file", "community", "profile",
];
const NO_OBJECT: &str = "none";
/// Indexes into COUNTED_TYPES.
const PARTICIPATING: [usize; 6] = [4, 3, 6, 7, 5, 11]; // like comment follow join mention share
const CONTRIBUTING: [usize; 3] = [2, 10, 9]; // post upload edit
const LIKE: usize = 4;
const MENTION: usize = 5;
const PERSON_OBJECT_TYPES: [&str; 4] = ["profile", "person", "user", "people"];
const PERSON_URN_MARK: &[u8] = b"profiles.person:";
const MAX_RECORD_BYTES: usize = 1024 * 1024;
const MS_PER_DAY: i64 = 86_400_000;
const MAX_DEPTH: usize = 16;

// ---------------------------------------------------------------------------------------------
// A strict JSON reader for the common record: ASCII only, no escapes. Anything else is "unsure".

#[derive(Clone, Copy)]
enum Value<'a> {
    Null,
    Str(&'a [u8]),
    /// A number, a boolean, an array or an object other than the one "object" field reads.
    Other,
    Object(ObjectRef<'a>),
}

#[derive(Clone, Copy, Default)]
struct ObjectRef<'a> {
    kind: Option<Value2<'a>>,
    id: Option<Value2<'a>>,
}

/// A field of the nested object: a string or something else.
#[derive(Clone, Copy)]
enum Value2<'a> {
    Str(&'a [u8]),
    Other,
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }
    /// A string without escapes or control characters (ASCII was checked for the whole value).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            let c = *self.s.get(self.i)?;
            if c == b'"' {
                let out = &self.s[start..self.i];
                self.i += 1;
                return Some(out);
            }
            if c == b'\\' || c < 0x20 || c == 0x7f {
                return None;
            }
            self.i += 1;
        }
    }
    /// A number as JSON spells it; only plain ones (no exponent, at most 15 digits) are sure.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        self.eat(b'-');
        let int_start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let int_len = self.i - int_start;
        if int_len == 0 || (int_len > 1 && self.s[int_start] == b'0') {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if self.i == frac {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || self.i - start > 16 {
            return None;
        }
        Some(())
    }
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }
    /// Skip any value (depth-bounded), telling only whether it was null or a string.
    fn skip(&mut self, depth: usize) -> Option<Value<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => Some(Value::Str(self.string()?)),
            b'n' => self.literal(b"null").map(|_| Value::Null),
            b't' => self.literal(b"true").map(|_| Value::Other),
            b'f' => self.literal(b"false").map(|_| Value::Other),
            b'-' | b'0'..=b'9' => self.number().map(|_| Value::Other),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(Value::Other);
                }
                loop {
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(Value::Other);
                        }
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.members(depth + 1, |_, _| {})?;
                Some(Value::Other)
            }
            _ => None,
        }
    }
    /// An object's members: `each(key, value)` for every one (last one wins for duplicates).
    fn members(&mut self, depth: usize, mut each: impl FnMut(&'a [u8], Value<'a>)) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.skip(depth)?;
            each(key, value);
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[derive(Default)]
struct Fields<'a> {
    id: Option<Value<'a>>,
    kind: Option<Value<'a>>,
    actor: Option<Value<'a>>,
    time: Option<Value<'a>>,
    object: Option<Value<'a>>,
    community: Option<Value<'a>>,
    target_user: Option<Value<'a>>,
    source: Option<Value<'a>>,
    cloudevent: bool,
}

fn read_fields(value: &[u8]) -> Option<Fields<'_>> {
    if !value.is_ascii() {
        return None;
    }
    let mut r = Reader { s: value, i: 0 };
    r.ws();
    if r.peek()? != b'{' {
        return None;
    }
    let mut f = Fields::default();
    // The nested "object" is read as its own object: remember where it is and read it after.
    let mut object_at: Option<usize> = None;
    // Members by hand so that the "object" value can be read with its fields.
    r.eat(b'{')?;
    r.ws();
    if r.eat(b'}').is_none() {
        loop {
            r.ws();
            let key = r.string()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            let at = r.i;
            let value = r.skip(1)?;
            match key {
                b"id" => f.id = Some(value),
                b"type" => f.kind = Some(value),
                b"actor" => f.actor = Some(value),
                b"time" => f.time = Some(value),
                b"community" => f.community = Some(value),
                b"target_user" => f.target_user = Some(value),
                b"source" => f.source = Some(value),
                b"specversion" => f.cloudevent = true,
                b"object" => {
                    f.object = Some(value);
                    object_at = if r.s[at] == b'{' { Some(at) } else { None };
                }
                _ => {}
            }
            r.ws();
            match r.peek()? {
                b',' => r.i += 1,
                b'}' => {
                    r.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    r.ws();
    if r.i != r.s.len() {
        return None; // trailing bytes: the JSON parser refuses the record
    }
    if let Some(at) = object_at {
        let mut o = ObjectRef::default();
        let mut inner = Reader { s: value, i: at };
        inner.members(2, |key, v| {
            let v2 = match v {
                Value::Str(s) => Value2::Str(s),
                _ => Value2::Other,
            };
            match key {
                b"type" => o.kind = Some(v2),
                b"id" => o.id = Some(v2),
                _ => {}
            }
        })?;
        f.object = Some(Value::Object(o));
    } else if matches!(f.object, Some(Value::Other)) {
        return None; // an array or a number as the object: the Python gate words it
    }
    Some(f)
}

// ---------------------------------------------------------------------------------------------
// RFC 3339 times, as strict as stream.decode's pattern and as datetime.fromisoformat.

fn digits(s: &[u8], from: usize, n: usize) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in s.get(from..from + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Epoch milliseconds (floored) of `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)`, else None.
fn epoch_ms(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (h, mi, sec) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if y < 1 || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 6 {
            return None;
        }
        // Microseconds floored to milliseconds: the first three digits, zero-padded.
        for k in 0..3 {
            millis = millis * 10 + if k < n { i64::from(s[start + k] - b'0') } else { 0 };
        }
    }
    let offset_ms = match s.get(i..)? {
        b"Z" => 0,
        rest if rest.len() == 6 && (rest[0] == b'+' || rest[0] == b'-') && rest[3] == b':' => {
            let (oh, om) = (digits(rest, 1, 2)?, digits(rest, 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if rest[0] == b'+' { 1 } else { -1 };
            sign * (oh * 3_600_000 + om * 60_000)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + sec * 1000 + millis - offset_ms)
}

fn iso_day(day_number: i64) -> String {
    let (y, m, d) = civil_from_days(day_number);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------------------------
// The gate's fast path, as stream.decode._fast_activity and the checks around it.

struct Activity<'a> {
    actor: &'a [u8],
    time_ms: i64,
    kind: usize,
    raw_type: &'a [u8],
    object_type: &'a str,
    raw_object_type: &'a [u8],
    object_id: Option<&'a [u8]>,
    is_person: bool,
    community: Option<&'a [u8]>,
    target: Option<&'a [u8]>,
}

fn text(v: Option<Value<'_>>, min: usize, max: usize) -> Option<&[u8]> {
    match v {
        Some(Value::Str(s)) if s.len() >= min && s.len() <= max => Some(s),
        _ => None,
    }
}

/// None: not sure, the Python gate decides. Some(None): optional text absent or null.
fn optional_text(v: Option<Value<'_>>) -> Option<Option<&[u8]>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::Str(s)) if s.len() <= 256 => Some(Some(s)),
        _ => None,
    }
}

fn type_name_ok(s: &[u8]) -> bool {
    // ^[a-z][a-z0-9_.\-]{0,63}$
    !s.is_empty()
        && s.len() <= 64
        && s[0].is_ascii_lowercase()
        && s[1..].iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

fn fast_activity<'a>(value: &'a [u8], key: Option<&[u8]>, earliest: i64, latest: i64) -> Option<Activity<'a>> {
    if value.is_empty() || value.len() > MAX_RECORD_BYTES {
        return None;
    }
    let f = read_fields(value)?;
    if f.cloudevent {
        return None;
    }
    text(f.id, 1, 256)?;
    let actor = text(f.actor, 1, 256)?; // ASCII without control characters: the actor pattern
    let raw_type = text(f.kind, 1, usize::MAX)?;
    let known = COUNTED_TYPES[..OTHER].iter().position(|t| t.as_bytes() == raw_type);
    if known.is_none() && !type_name_ok(raw_type) {
        return None;
    }
    let time = text(f.time, 1, usize::MAX)?;
    let community = optional_text(f.community)?;
    let target = optional_text(f.target_user)?;
    optional_text(f.source)?;
    let (mut object_type, mut raw_object_type, mut object_id) = (NO_OBJECT, &b""[..], None);
    match f.object {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            let (Some(Value2::Str(t)), Some(Value2::Str(id))) = (o.kind, o.id) else {
                return None;
            };
            if t.is_empty() || t.len() > 64 || id.is_empty() || id.len() > 256 {
                return None;
            }
            raw_object_type = t;
            object_id = Some(id);
            object_type = OBJECT_TYPES.iter().find(|k| k.as_bytes() == t).copied().unwrap_or("other");
        }
        _ => return None,
    }
    let time_ms = epoch_ms(time)?;
    if key != Some(actor) || time_ms < earliest || time_ms > latest {
        return None; // the Python gate words the key mismatch or the time out of bounds
    }
    let mut is_person = false;
    if let Some(id) = object_id {
        if raw_object_type.contains(&b':') || id.windows(PERSON_URN_MARK.len()).any(|w| w == PERSON_URN_MARK) {
            return None; // a person URN: its user id is found by the Python path
        }
        let lowered = raw_object_type.to_ascii_lowercase();
        is_person = PERSON_OBJECT_TYPES.iter().any(|p| p.as_bytes() == lowered.as_slice()) || target == Some(id);
        if is_person {
            object_type = "profile";
        }
    }
    Some(Activity {
        actor,
        time_ms,
        kind: known.unwrap_or(OTHER),
        raw_type,
        object_type,
        raw_object_type,
        object_id,
        is_person,
        community,
        target,
    })
}

// ---------------------------------------------------------------------------------------------
// The fold, as stream.fold.PartitionDelta.add.

#[derive(Default)]
struct UserAcc {
    first_ms: i64,
    last_ms: i64,
    counts: [i64; 13],
    /// First-seen order of the counted types, as a dict's insertion order.
    order: Vec<u8>,
}

#[derive(Default)]
struct Acc {
    users: HashMap<String, UserAcc>,
    user_order: Vec<String>,
    day_actives: HashMap<i64, HashMap<String, i64>>,
    day_tiers: HashMap<(u8, i64), HashSet<String>>,
    tier_last: [HashMap<String, i64>; 3],
    day_content: HashMap<(i64, usize, &'static str), i64>,
    day_objects: HashMap<(i64, String), i64>,
    received: HashMap<String, [i64; 2]>,
    communities: HashMap<String, [i64; 2]>,
    totals: HashMap<(usize, &'static str), i64>,
    unknown_types: HashMap<String, i64>,
    activity_times: Vec<(i64, String)>,
    events: i64,
    max_event_ms: Option<i64>,
    times: Vec<i64>,
}

fn object_type_static(s: &str) -> &'static str {
    OBJECT_TYPES.iter().find(|k| **k == s).copied().unwrap_or(if s == NO_OBJECT { NO_OBJECT } else { "other" })
}

fn utf8(b: &[u8]) -> &str {
    // Checked ASCII by read_fields.
    std::str::from_utf8(b).unwrap_or("")
}

impl Acc {
    fn seen_in_tier(&mut self, tier: usize, user: &str, t: i64) {
        let last = &mut self.tier_last[tier];
        match last.get_mut(user) {
            Some(held) => {
                if t > *held {
                    *held = t;
                }
            }
            None => {
                last.insert(user.to_owned(), t);
            }
        }
    }

    fn add_tier(&mut self, tier: u8, day: i64, user: &str) {
        let members = self.day_tiers.entry((tier, day)).or_default();
        if !members.contains(user) {
            members.insert(user.to_owned());
        }
    }

    /// One valid activity (its ids already pseudonymized and its person object keyed).
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        t: i64,
        kind: usize,
        raw_type: &str,
        object_type: &'static str,
        actor: &str,
        target: Option<&str>,
        object_key: Option<String>,
        community: Option<&str>,
        counts: bool,
    ) {
        let day = t.div_euclid(MS_PER_DAY);
        match self.users.get_mut(actor) {
            Some(u) => {
                if t < u.first_ms {
                    u.first_ms = t;
                }
                if t > u.last_ms {
                    u.last_ms = t;
                }
                if u.counts[kind] == 0 {
                    u.order.push(kind as u8);
                }
                u.counts[kind] += 1;
            }
            None => {
                let mut u = UserAcc { first_ms: t, last_ms: t, ..Default::default() };
                u.counts[kind] = 1;
                u.order.push(kind as u8);
                self.users.insert(actor.to_owned(), u);
                self.user_order.push(actor.to_owned());
            }
        }
        if counts {
            let minute = t.rem_euclid(MS_PER_DAY) / 60_000;
            let actives = self.day_actives.entry(day).or_default();
            match actives.get_mut(actor) {
                Some(m) => {
                    if minute < *m {
                        *m = minute;
                    }
                }
                None => {
                    actives.insert(actor.to_owned(), minute);
                }
            }
            self.seen_in_tier(0, actor, t);
            self.activity_times.push((t, actor.to_owned()));
        }
        let participating = PARTICIPATING.contains(&kind);
        let contributing = CONTRIBUTING.contains(&kind);
        if participating || contributing {
            self.add_tier(b'p', day, actor);
            self.seen_in_tier(1, actor, t);
            if contributing {
                self.add_tier(b'c', day, actor);
                self.seen_in_tier(2, actor, t);
            }
        }
        *self.totals.entry((kind, object_type)).or_default() += 1;
        *self.day_content.entry((day, kind, object_type)).or_default() += 1;
        if kind == OTHER && raw_type != "other" {
            *self.unknown_types.entry(raw_type.to_owned()).or_default() += 1;
        }
        if let Some(key) = object_key {
            *self.day_objects.entry((day, key)).or_default() += 1;
        }
        if let Some(target) = target {
            if kind == LIKE || kind == MENTION {
                let got = self.received.entry(target.to_owned()).or_default();
                got[if kind == LIKE { 0 } else { 1 }] += 1;
            }
        }
        if let Some(c) = community {
            let named = self.communities.entry(c.to_owned()).or_insert([t, 0]);
            named[1] += 1;
            if t > named[0] {
                named[0] = t;
            }
        }
        self.events += 1;
        if self.max_event_ms.map_or(true, |m| t > m) {
            self.max_event_ms = Some(t);
        }
    }
}

struct Names<'py> {
    py: Python<'py>,
    pseudonymize: Option<Bound<'py, PyAny>>,
    pseudonyms: HashMap<Vec<u8>, String>,
    strings: HashMap<String, Bound<'py, PyString>>,
}

impl<'py> Names<'py> {
    fn id(&mut self, raw: &[u8]) -> PyResult<String> {
        let Some(f) = &self.pseudonymize else {
            return Ok(utf8(raw).to_owned());
        };
        if let Some(p) = self.pseudonyms.get(raw) {
            return Ok(p.clone());
        }
        let p: String = f.call1((utf8(raw),))?.extract()?;
        self.pseudonyms.insert(raw.to_vec(), p.clone());
        Ok(p)
    }
    /// One Python string per distinct id of the call: shared by every dict it lands in.
    fn py(&mut self, s: &str) -> Bound<'py, PyString> {
        if let Some(v) = self.strings.get(s) {
            return v.clone();
        }
        let v = PyString::new(self.py, s);
        self.strings.insert(s.to_owned(), v.clone());
        v
    }
}

/// ``name``: an interned string (`pyo3::intern!`): a new string a call missed the type's attribute
/// cache and was hashed again, twice a record (perf of the worker on the bench's topic).
fn optional_bytes<'py>(record: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let v = record.getattr(name)?;
    if v.is_none() {
        return Ok(None);
    }
    // Exactly bytes: a subclass may behave otherwise (the Python gate handles it).
    Ok(v.downcast_into_exact::<PyBytes>().ok())
}

/// The shared loop: fold the plainly valid records; the indexes of the others.
fn fold_records<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    earliest_ms: i64,
    latest_ms: i64,
    pseudonymize: Option<Bound<'py, PyAny>>,
    counting_types: Option<Bound<'py, PyAny>>,
) -> PyResult<(Acc, Vec<usize>, Names<'py>)> {
    let counting: Option<Vec<String>> = match &counting_types {
        None => None,
        Some(set) => Some(set.try_iter()?.map(|v| v?.extract::<String>()).collect::<PyResult<_>>()?),
    };
    let mut names = Names { py, pseudonymize, pseudonyms: HashMap::default(), strings: HashMap::default() };
    let mut acc = Acc::default();
    let mut slow = Vec::new();
    let (value_name, key_name) = (pyo3::intern!(py, "value"), pyo3::intern!(py, "key"));
    for (index, record) in records.try_iter()?.enumerate() {
        let record = record?;
        let (Some(value), key) = (optional_bytes(&record, value_name)?, optional_bytes(&record, key_name)?) else {
            slow.push(index);
            continue;
        };
        let key_bytes = key.as_ref().map(|k| k.as_bytes());
        let Some(a) = fast_activity(value.as_bytes(), key_bytes, earliest_ms, latest_ms) else {
            slow.push(index);
            continue;
        };
        let actor = names.id(a.actor)?;
        let target = match a.target {
            Some(t) => Some(names.id(t)?),
            None => None,
        };
        let object_key = match a.object_id {
            None => None,
            Some(id) if a.is_person => Some(format!("profile:{}", names.id(id)?)),
            Some(id) => Some(format!("{}:{}", utf8(a.raw_object_type), utf8(id))),
        };
        let counts = match &counting {
            None => true,
            Some(types) => types.iter().any(|t| t.as_bytes() == a.raw_type),
        };
        let object_type = object_type_static(a.object_type);
        let community = a.community.map(utf8);
        acc.add(a.time_ms, a.kind, utf8(a.raw_type), object_type, &actor, target.as_deref(), object_key, community, counts);
        acc.times.push(a.time_ms);
    }
    Ok((acc, slow, names))
}

fn write_delta<'py>(
    py: Python<'py>,
    delta: &Bound<'py, PyAny>,
    acc: &Acc,
    names: &mut Names<'py>,
    user_delta: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let users = delta.getattr("users")?.downcast_into::<PyDict>()?;
    for name in &acc.user_order {
        let u = &acc.users[name];
        let counts = PyDict::new(py);
        for &kind in &u.order {
            counts.set_item(COUNTED_TYPES[kind as usize], u.counts[kind as usize])?;
        }
        users.set_item(names.py(name), user_delta.call1((u.first_ms, u.last_ms, counts))?)?;
    }
    let mut days: HashMap<i64, Bound<'py, PyString>> = HashMap::default();
    let mut day = |n: i64| -> Bound<'py, PyString> { days.entry(n).or_insert_with(|| PyString::new(py, &iso_day(n))).clone() };
    let day_actives = delta.getattr("day_actives")?.downcast_into::<PyDict>()?;
    for (d, members) in &acc.day_actives {
        let inner = PyDict::new(py);
        for (user, minute) in members {
            inner.set_item(names.py(user), *minute)?;
        }
        day_actives.set_item(day(*d), inner)?;
    }
    let day_tiers = delta.getattr("day_tiers")?.downcast_into::<PyDict>()?;
    for ((tier, d), members) in &acc.day_tiers {
        let set = PySet::empty(py)?;
        for user in members {
            set.add(names.py(user))?;
        }
        let tier = if *tier == b'p' { "p" } else { "c" };
        day_tiers.set_item(PyTuple::new(py, [tier.into_pyobject(py)?.into_any(), day(*d).into_any()])?, set)?;
    }
    let tier_last = delta.getattr("tier_last")?.downcast_into::<PyDict>()?;
    for (index, tier) in ["a", "p", "c"].iter().enumerate() {
        let held = tier_last.get_item(tier)?.ok_or_else(|| PyValueError::new_err("tier_last"))?;
        let held = held.downcast_into::<PyDict>()?;
        for (user, t) in &acc.tier_last[index] {
            held.set_item(names.py(user), *t)?;
        }
    }
    let day_content = delta.getattr("day_content")?.downcast_into::<PyDict>()?;
    for ((d, kind, object_type), n) in &acc.day_content {
        let mix = format!("{}|{}", COUNTED_TYPES[*kind], object_type);
        day_content.set_item((day(*d), mix), *n)?;
    }
    let day_objects = delta.getattr("day_objects")?.downcast_into::<PyDict>()?;
    for ((d, item), n) in &acc.day_objects {
        day_objects.set_item((day(*d), names.py(item)), *n)?;
    }
    let received = delta.getattr("received")?.downcast_into::<PyDict>()?;
    for (user, got) in &acc.received {
        received.set_item(names.py(user), PyList::new(py, got)?)?;
    }
    let communities = delta.getattr("communities")?.downcast_into::<PyDict>()?;
    for (c, named) in &acc.communities {
        communities.set_item(names.py(c), PyList::new(py, named)?)?;
    }
    let totals = delta.getattr("totals")?.downcast_into::<PyDict>()?;
    for ((kind, object_type), n) in &acc.totals {
        totals.set_item((COUNTED_TYPES[*kind], *object_type), *n)?;
    }
    let unknown = delta.getattr("unknown_types")?.downcast_into::<PyDict>()?;
    for (raw, n) in &acc.unknown_types {
        unknown.set_item(raw, *n)?;
    }
    let times = delta.getattr("activity_times")?.downcast_into::<PySet>()?;
    for (t, user) in &acc.activity_times {
        times.add((*t, names.py(user)))?;
    }
    delta.setattr("events", acc.events)?;
    if let Some(m) = acc.max_event_ms {
        delta.setattr("max_event_ms", m)?;
    }
    Ok(())
}


// ---------------------------------------------------------------------------------------------
// A batch held in Rust: the records it folded and those the Python gate forwarded, written out
// as fold.lua's JSON payload without a Python object per event (stream/store/fold_call.py is the
// definition of that payload; a test holds the two to the same payload).

#[pyclass(unsendable)]
struct NativeBatch {
    acc: Acc,
}

/// Fold the plainly valid records into a new batch: (batch, indexes left to the Python gate,
/// event times of the records folded here).
#[pyfunction]
#[pyo3(signature = (records, earliest_ms, latest_ms, pseudonymize, counting_types))]
fn fold_batch<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    earliest_ms: i64,
    latest_ms: i64,
    pseudonymize: Option<Bound<'py, PyAny>>,
    counting_types: Option<Bound<'py, PyAny>>,
) -> PyResult<(NativeBatch, Vec<usize>, Vec<i64>)> {
    let (mut acc, slow, _) = fold_records(py, records, earliest_ms, latest_ms, pseudonymize, counting_types)?;
    let times = std::mem::take(&mut acc.times);
    Ok((NativeBatch { acc }, slow, times))
}

fn escape_json(out: &mut String, text: &str) {
    out.push('"');
    push_escaped(out, text);
    out.push('"');
}

/// ``text`` inside a JSON string, without the quotes.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

fn push_int(out: &mut String, n: i64) {
    use std::fmt::Write;
    let _ = write!(out, "{n}");
}

/// (partition keys' base, method, text argument, number argument) -> key name.
type NameKey = (String, &'static str, String, Option<i64>);

/// Key names asked once from the Python PartitionKeys (the definition of the names) and kept
/// for the process: a partition's bucket and day keys are the same batch after batch, and a
/// call into Python per key had cost the payload more than writing it.
static KEY_NAMES: std::sync::Mutex<Option<std::collections::HashMap<NameKey, String>>> =
    std::sync::Mutex::new(None);
/// Names kept at most (a year of days for a few hundred partitions, and every bucket).
const KEY_NAMES_KEPT: usize = 500_000;

struct KeyNames<'py> {
    k: Bound<'py, PyAny>,
    base: String,
}

impl<'py> KeyNames<'py> {
    fn get(&mut self, method: &'static str, args: (&str, Option<i64>)) -> PyResult<String> {
        let cache_key: NameKey = (self.base.clone(), method, args.0.to_owned(), args.1);
        if let Ok(guard) = KEY_NAMES.lock() {
            if let Some(v) = guard.as_ref().and_then(|names| names.get(&cache_key)) {
                return Ok(v.clone());
            }
        }
        let name: String = match (args.0, args.1) {
            ("", Some(n)) => self.k.call_method1(method, (n,))?.extract()?,
            (text, Some(n)) => self.k.call_method1(method, (text, n))?.extract()?,
            (text, None) => self.k.call_method1(method, (text,))?.extract()?,
        };
        remember(cache_key, &name);
        Ok(name)
    }

    /// A key named by two texts (a tier and an ISO day).
    fn get_two_texts(&mut self, method: &'static str, first: &str, second: &str) -> PyResult<String> {
        let cache_key: NameKey = (self.base.clone(), method, format!("{first}\t{second}"), None);
        if let Ok(guard) = KEY_NAMES.lock() {
            if let Some(v) = guard.as_ref().and_then(|names| names.get(&cache_key)) {
                return Ok(v.clone());
            }
        }
        let name: String = self.k.call_method1(method, (first, second))?.extract()?;
        remember(cache_key, &name);
        Ok(name)
    }
}

fn remember(cache_key: NameKey, name: &str) {
    if let Ok(mut guard) = KEY_NAMES.lock() {
        let names = guard.get_or_insert_with(std::collections::HashMap::new);
        if names.len() >= KEY_NAMES_KEPT {
            names.clear();
        }
        names.insert(cache_key, name.to_owned());
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    // zlib.crc32 (IEEE 802.3, reflected), bit by bit: ids are short.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn expire_at(number: i64, retention_days: i64) -> i64 {
    (number + 1 + retention_days) * (MS_PER_DAY / 1000)
}

/// One day's `[key, expire_at, [name, count, name, count...]]`, comma-led after the first.
fn push_day_entry<S: AsRef<str>>(out: &mut String, index: usize, key: &str, expire: i64, pairs: &[(S, i64)]) {
    if index > 0 {
        out.push(',');
    }
    out.push('[');
    escape_json(out, key);
    out.push(',');
    push_int(out, expire);
    out.push_str(",[");
    for (j, (name, n)) in pairs.iter().enumerate() {
        if j > 0 {
            out.push(',');
        }
        escape_json(out, name.as_ref());
        out.push(',');
        push_int(out, *n);
    }
    out.push_str("]]");
}

#[pymethods]
impl NativeBatch {
    #[getter]
    fn events(&self) -> i64 {
        self.acc.events
    }

    #[getter]
    fn max_event_ms(&self) -> Option<i64> {
        self.acc.max_event_ms
    }

    /// (type, object_type) -> events, for the worker's counters.
    fn totals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for ((kind, object_type), n) in &self.acc.totals {
            d.set_item((COUNTED_TYPES[*kind], *object_type), *n)?;
        }
        Ok(d)
    }

    /// One activity the Python gate decoded (as PartitionDelta.add takes it; ids that must be
    /// left out of the per-id analytics are passed as None).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (time_ms, kind, raw_type, object_type, actor, target, object_key, community, counts))]
    fn add(
        &mut self,
        time_ms: i64,
        kind: &str,
        raw_type: &str,
        object_type: &str,
        actor: &str,
        target: Option<&str>,
        object_key: Option<String>,
        community: Option<&str>,
        counts: bool,
    ) -> PyResult<()> {
        let index = COUNTED_TYPES
            .iter()
            .position(|t| *t == kind)
            .ok_or_else(|| PyValueError::new_err(format!("not a counted type: {kind}")))?;
        let object_type = object_type_static(object_type);
        self.acc.add(time_ms, index, raw_type, object_type, actor, target, object_key, community, counts);
        Ok(())
    }

    /// Write the batch into an empty PartitionDelta's fields (tests, and any reader of them).
    fn write_into<'py>(&self, py: Python<'py>, delta: &Bound<'py, PyAny>, user_delta: &Bound<'py, PyAny>) -> PyResult<()> {
        let mut names = Names { py, pseudonymize: None, pseudonyms: HashMap::default(), strings: HashMap::default() };
        write_delta(py, delta, &self.acc, &mut names, user_delta)
    }

    /// fold.lua's declared keys (besides the fixed ones) and JSON payload, as fold_call builds them.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (k, buckets, floor, bitmap_days, analytics_days, capacity, slots_json))]
    fn payload<'py>(
        &self,
        py: Python<'py>,
        k: Bound<'py, PyAny>,
        buckets: u32,
        floor: i64,
        bitmap_days: i64,
        analytics_days: i64,
        capacity: i64,
        slots_json: &str,
    ) -> PyResult<(Vec<String>, Bound<'py, PyBytes>)> {
        let acc = &self.acc;
        let base: String = k.getattr("base")?.extract()?;
        let mut keys = KeyNames { k, base };
        let mut touched: Vec<String> = Vec::new();
        let mut declared: HashSet<String> = HashSet::default();
        let mut touch = |name: &str, touched: &mut Vec<String>| {
            if declared.insert(name.to_owned()) {
                touched.push(name.to_owned());
            }
        };
        let mut out = String::with_capacity(64 * (acc.events as usize + 16));
        // Users by bucket, in first-met order; numbered in the order fold.lua meets them.
        let mut groups: Vec<(u32, Vec<&str>)> = Vec::new();
        let mut group_of: HashMap<u32, usize> = HashMap::default();
        for user in &acc.user_order {
            let bucket = crc32(user.as_bytes()) % buckets.max(1);
            let at = *group_of.entry(bucket).or_insert_with(|| {
                groups.push((bucket, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(user);
        }
        let mut position: HashMap<&str, i64> = HashMap::default();
        let stats_n = keys.get("stats", ("n", None))?;
        out.push_str("{\"n\":");
        escape_json(&mut out, &stats_n);
        out.push_str(",\"u\":[");
        let mut number = 0;
        for (g, (bucket, users)) in groups.iter().enumerate() {
            let key = keys.get("user_bucket", ("", Some(i64::from(*bucket))))?;
            touch(&key, &mut touched);
            if g > 0 {
                out.push(',');
            }
            out.push('[');
            escape_json(&mut out, &key);
            for user in users {
                number += 1;
                position.insert(user, number);
                let u = &acc.users[*user];
                out.push(',');
                escape_json(&mut out, user);
                out.push(',');
                push_int(&mut out, u.first_ms);
                out.push(',');
                push_int(&mut out, u.last_ms);
                out.push_str(",{");
                for (i, &kind) in u.order.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    escape_json(&mut out, COUNTED_TYPES[kind as usize]);
                    out.push(':');
                    push_int(&mut out, u.counts[kind as usize]);
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push(']');
        if !groups.is_empty() {
            touch(&stats_n, &mut touched);
        }
        out.push_str(",\"t\":[");
        let mut first_tier = true;
        for (day, actives) in &acc.day_actives {
            let iso = iso_day(*day);
            let bitmap = keys.get_two_texts("tier_day", "a", &iso)?;
            let stats = keys.get("stats", ("a", None))?;
            let hll = keys.get("tier_hll", ("a", Some(*day)))?;
            let progression = keys.get("day_progression", ("", Some(*day)))?;
            let spill = keys.get("day_progression_spill", ("", Some(*day)))?;
            for name in [&bitmap, &stats, &hll, &progression, &spill] {
                touch(name, &mut touched);
            }
            if !first_tier {
                out.push(',');
            }
            first_tier = false;
            out.push_str("[\"a\",");
            push_int(&mut out, *day);
            out.push(',');
            escape_json(&mut out, &bitmap);
            out.push(',');
            escape_json(&mut out, &stats);
            out.push(',');
            push_int(&mut out, floor.max(expire_at(*day, bitmap_days)));
            out.push(',');
            escape_json(&mut out, &hll);
            out.push(',');
            push_int(&mut out, floor.max(expire_at(*day, analytics_days)));
            out.push(',');
            escape_json(&mut out, &progression);
            out.push(',');
            escape_json(&mut out, &spill);
            out.push_str(",[");
            let members: Vec<(&String, &i64)> = actives.iter().collect();
            for (i, (user, _)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_int(&mut out, position[user.as_str()]);
            }
            out.push_str("],[");
            for (i, (_, minute)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_int(&mut out, **minute);
            }
            out.push_str("]]");
        }
        for ((tier, day), members) in &acc.day_tiers {
            let tier = if *tier == b'p' { "p" } else { "c" };
            let iso = iso_day(*day);
            let bitmap = keys.get_two_texts("tier_day", tier, &iso)?;
            let stats = keys.get("stats", (tier, None))?;
            touch(&bitmap, &mut touched);
            touch(&stats, &mut touched);
            if !first_tier {
                out.push(',');
            }
            first_tier = false;
            out.push('[');
            escape_json(&mut out, tier);
            out.push(',');
            push_int(&mut out, *day);
            out.push(',');
            escape_json(&mut out, &bitmap);
            out.push(',');
            escape_json(&mut out, &stats);
            out.push(',');
            push_int(&mut out, floor.max(expire_at(*day, bitmap_days)));
            out.push_str(",\"\",0,\"\",\"\",[");
            for (i, user) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_int(&mut out, position[user.as_str()]);
            }
            out.push_str("],[]]");
        }
        out.push(']');
        // Content mix and top items, one entry per day.
        let mut content: HashMap<i64, Vec<(String, i64)>> = HashMap::default();
        for ((day, kind, object_type), n) in &acc.day_content {
            content.entry(*day).or_default().push((format!("{}|{}", COUNTED_TYPES[*kind], object_type), *n));
        }
        out.push_str(",\"m\":[");
        for (i, (day, fields)) in content.iter().enumerate() {
            let key = keys.get("content", ("", Some(*day)))?;
            touch(&key, &mut touched);
            push_day_entry(&mut out, i, &key, floor.max(expire_at(*day, analytics_days)), fields);
        }
        out.push(']');
        let mut top: HashMap<i64, Vec<(&str, i64)>> = HashMap::default();
        for ((day, item), n) in &acc.day_objects {
            top.entry(*day).or_default().push((item.as_str(), *n));
        }
        out.push_str(",\"o\":[");
        for (i, (day, items)) in top.iter().enumerate() {
            let key = keys.get("top_items", ("d", Some(*day)))?;
            touch(&key, &mut touched);
            push_day_entry(&mut out, i, &key, floor.max(expire_at(*day, analytics_days)), items);
        }
        out.push_str("],\"cap\":");
        push_int(&mut out, capacity);
        out.push_str(",\"slots\":");
        out.push_str(slots_json);
        // Likes and mentions received, by bucket of the receiver.
        let mut received: Vec<(String, Vec<(&str, [i64; 2])>)> = Vec::new();
        let mut received_at: HashMap<u32, usize> = HashMap::default();
        for (user, got) in &acc.received {
            let bucket = crc32(user.as_bytes()) % buckets.max(1);
            let at = match received_at.get(&bucket) {
                Some(at) => *at,
                None => {
                    let key = keys.get("received", ("", Some(i64::from(bucket))))?;
                    touch(&key, &mut touched);
                    received.push((key, Vec::new()));
                    received_at.insert(bucket, received.len() - 1);
                    received.len() - 1
                }
            };
            received[at].1.push((user.as_str(), *got));
        }
        out.push_str(",\"r\":[");
        for (i, (key, users)) in received.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            escape_json(&mut out, key);
            for (user, got) in users {
                out.push(',');
                escape_json(&mut out, user);
                out.push(',');
                push_int(&mut out, got[0]);
                out.push(',');
                push_int(&mut out, got[1]);
            }
            out.push(']');
        }
        out.push_str("],\"c\":[");
        for (i, (name, named)) in acc.communities.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            escape_json(&mut out, name);
            out.push(',');
            push_int(&mut out, named[0]);
            out.push(',');
            push_int(&mut out, named[1]);
        }
        // The reorder buffer: one member "time\tuser" per (time, user) pair, each once (as the
        // Python delta's set), written whole: fold.lua takes the score from the member's digits
        // instead of formatting the time and joining the user in Lua, its largest cost a member.
        let mut buffered: Vec<(i64, &str)> = acc.activity_times.iter().map(|(t, u)| (*t, u.as_str())).collect();
        buffered.sort_unstable();
        buffered.dedup();
        out.push_str("],\"b\":[");
        for (i, (t, user)) in buffered.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            push_int(&mut out, *t);
            out.push_str("\\t");
            push_escaped(&mut out, user);
            out.push('"');
        }
        out.push_str("],\"w\":");
        push_int(&mut out, acc.max_event_ms.unwrap_or(-1));
        out.push_str(",\"tot\":[");
        for (i, ((kind, object_type), n)) in acc.totals.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            escape_json(&mut out, &format!("{}|{}", COUNTED_TYPES[*kind], object_type));
            out.push(',');
            push_int(&mut out, *n);
        }
        out.push_str("],\"unk\":[");
        for (i, (raw, n)) in acc.unknown_types.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            escape_json(&mut out, raw);
            out.push(',');
            push_int(&mut out, *n);
        }
        out.push_str("]}");
        Ok((touched, PyBytes::new(py, out.as_bytes())))
    }
}

/// The constants this core holds, for a test to compare with stream.events.
#[pyfunction]
fn constants(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("counted_types", COUNTED_TYPES.to_vec())?;
    d.set_item("object_types", OBJECT_TYPES.to_vec())?;
    d.set_item("participating", PARTICIPATING.iter().map(|&i| COUNTED_TYPES[i]).collect::<Vec<_>>())?;
    d.set_item("contributing", CONTRIBUTING.iter().map(|&i| COUNTED_TYPES[i]).collect::<Vec<_>>())?;
    d.set_item("person_object_types", PERSON_OBJECT_TYPES.to_vec())?;
    d.set_item("person_urn_mark", std::str::from_utf8(PERSON_URN_MARK).unwrap_or(""))?;
    d.set_item("max_record_bytes", MAX_RECORD_BYTES)?;
    d.set_item("no_object", NO_OBJECT)?;
    Ok(d)
}

#[pymodule]
fn esn_pulse_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fold_batch, m)?)?;
    m.add_class::<NativeBatch>()?;
    m.add_function(wrap_pyfunction!(constants, m)?)?;
    Ok(())
}
