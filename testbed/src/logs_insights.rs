//! A checker for the CloudWatch Logs Insights queries the product ships (template.yaml's
//! `AWS::Logs::QueryDefinition`s): a parser for the part of the query language they use, and an
//! evaluator that runs them over JSON log lines, read by the field names Logs Insights gives
//! them. Offline, it is the closest thing to running the queries in CloudWatch.
//!
//! Followed: "CloudWatch Logs Insights language query syntax" (CloudWatch Logs User Guide,
//! CWL_QuerySyntax.html) and its pages on `fields`, `filter`, `stats`, `sort`, `limit`,
//! `display`, the comparison and Boolean operators, `like` with regular expressions and
//! `not like`, set membership `in`, and the functions `ispresent`, `strcontains`, `replace`,
//! `count`, `count_distinct`, `earliest`, `latest`, `min`, `max`. Discovered JSON fields are
//! flattened with `.` and array elements get their index (`user.extra.sessionName.0`), as the
//! guide's "Supported logs and discovered fields" describes.
//!
//! What it does not model: other commands (`parse`, `dedup`, `unmask`, ...), arithmetic,
//! `bin()`, and the result limit of 10,000 rows. A query using them is a parse error here,
//! which is the point: the shipped queries stay within what is checked.

use std::collections::BTreeMap;
use std::fmt;

/// A value of a field or an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Str(s) => f.write_str(s),
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One log event: its discovered fields.
pub type Row = BTreeMap<String, Value>;

/// `json`'s fields as Logs Insights discovers them: nested keys joined with `.`, array
/// elements by index.
pub fn discover(json: &serde_json::Value) -> Row {
    fn walk(prefix: &str, value: &serde_json::Value, row: &mut Row) {
        let key = |k: &str| {
            if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match value {
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(&key(k), v, row)),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(&key(&i.to_string()), v, row)),
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => {
                row.insert(prefix.to_owned(), Value::Str(s.clone()));
            }
            serde_json::Value::Number(n) => {
                row.insert(
                    prefix.to_owned(),
                    Value::Num(n.as_f64().unwrap_or(f64::NAN)),
                );
            }
            serde_json::Value::Bool(b) => {
                row.insert(prefix.to_owned(), Value::Bool(*b));
            }
        }
    }
    let mut row = Row::new();
    walk("", json, &mut row);
    row
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Regex(String),
    Sym(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '/' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated {c}...{c}")),
                    Some('\\') if chars.get(i + 1) == Some(&c) => {
                        s.push(c);
                        i += 2;
                    }
                    // A regex keeps its escapes for the regex engine.
                    Some('\\') if c == '/' => {
                        s.push('\\');
                        s.push(*chars.get(i + 1).ok_or("dangling \\")?);
                        i += 2;
                    }
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or("dangling \\")?);
                        i += 2;
                    }
                    Some(&d) if d == c => {
                        i += 1;
                        break;
                    }
                    Some(&d) => {
                        s.push(d);
                        i += 1;
                    }
                }
            }
            tokens.push(if c == '/' {
                regex::Regex::new(&s).map_err(|e| format!("bad regex /{s}/: {e}"))?;
                Token::Regex(s)
            } else {
                Token::Str(s)
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            tokens.push(Token::Num(
                s.parse().map_err(|_| format!("bad number {s}"))?,
            ));
        } else if c == '@' || c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            if s.ends_with('.') || s.contains("..") {
                return Err(format!("bad field name {s}"));
            }
            tokens.push(Token::Ident(s));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = ["!=", "<=", ">="]
                .into_iter()
                .find(|s| *s == two)
                .or_else(|| {
                    ["|", ",", "(", ")", "[", "]", "=", "<", ">", "*"]
                        .into_iter()
                        .find(|s| s.starts_with(c))
                })
                .ok_or_else(|| format!("unexpected character {c:?}"))?;
            i += sym.len();
            tokens.push(Token::Sym(sym));
        }
    }
    Ok(tokens)
}

/// An expression of `fields`, `filter` or `stats`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Field(String),
    Str(String),
    Num(f64),
    Star,
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(&'static str, Box<Expr>, Box<Expr>),
    Like {
        negated: bool,
        expr: Box<Expr>,
        pattern: Pattern,
    },
    In {
        negated: bool,
        expr: Box<Expr>,
        set: Vec<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Regex(String),
    Substring(String),
}

/// One command between pipes.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Fields(Vec<(Expr, String)>),
    Display(Vec<String>),
    Filter(Expr),
    Stats {
        aggregates: Vec<(Expr, String)>,
        by: Vec<String>,
    },
    Sort(Vec<(String, bool)>),
    Limit(usize),
}

const SCALAR_FUNCTIONS: [(&str, usize); 4] = [
    ("ispresent", 1),
    ("strcontains", 2),
    ("replace", 3),
    ("tolower", 1),
];
const AGGREGATES: [&str; 6] = [
    "count",
    "count_distinct",
    "earliest",
    "latest",
    "min",
    "max",
];

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("unexpected end")?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn sym(&mut self, sym: &str) -> bool {
        if self.peek() == Some(&Token::Sym(leak(sym))) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.sym(sym) {
            Ok(())
        } else {
            Err(format!("expected {sym}, found {:?}", self.peek()))
        }
    }

    fn field(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Ident(name) if !is_keyword(&name) => Ok(name),
            other => Err(format!("expected a field, found {other:?}")),
        }
    }

    fn command(&mut self) -> Result<Command, String> {
        let Token::Ident(name) = self.next()? else {
            return Err("a command must start with its name".into());
        };
        match name.to_ascii_lowercase().as_str() {
            "fields" => Ok(Command::Fields(self.aliased(false)?)),
            "display" => {
                let mut fields = vec![self.field()?];
                while self.sym(",") {
                    fields.push(self.field()?);
                }
                Ok(Command::Display(fields))
            }
            "filter" => Ok(Command::Filter(self.or()?)),
            "stats" => {
                let aggregates = self.aliased(true)?;
                let mut by = Vec::new();
                if self.keyword("by") {
                    by.push(self.field()?);
                    while self.sym(",") {
                        by.push(self.field()?);
                    }
                }
                Ok(Command::Stats { aggregates, by })
            }
            "sort" => {
                let mut keys = Vec::new();
                loop {
                    let field = self.field()?;
                    let desc = if self.keyword("desc") {
                        true
                    } else {
                        self.keyword("asc");
                        false
                    };
                    keys.push((field, desc));
                    if !self.sym(",") {
                        break;
                    }
                }
                Ok(Command::Sort(keys))
            }
            "limit" => match self.next()? {
                Token::Num(n) if n >= 1.0 && n.fract() == 0.0 => Ok(Command::Limit(n as usize)),
                other => Err(format!("limit needs a positive integer, found {other:?}")),
            },
            other => Err(format!("unsupported command {other:?}")),
        }
    }

    /// `expr [as name], ...`; for `stats`, every expression must be an aggregate.
    fn aliased(&mut self, aggregate: bool) -> Result<Vec<(Expr, String)>, String> {
        let mut out = Vec::new();
        loop {
            let start = self.at;
            let expr = self.or()?;
            if aggregate && !matches!(&expr, Expr::Call(f, _) if AGGREGATES.contains(&f.as_str())) {
                return Err(format!("stats needs an aggregate function, found {expr:?}"));
            }
            let name = if self.keyword("as") {
                self.field()?
            } else {
                match &expr {
                    Expr::Field(f) => f.clone(),
                    _ => render_tokens(&self.tokens[start..self.at]),
                }
            };
            out.push((expr, name));
            if !self.sym(",") {
                return Ok(out);
            }
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.primary()?;
        for op in ["=", "!=", "<=", ">=", "<", ">"] {
            if self.sym(op) {
                return Ok(Expr::Compare(
                    leak(op),
                    Box::new(left),
                    Box::new(self.primary()?),
                ));
            }
        }
        let negated = {
            let save = self.at;
            if self.keyword("not") {
                if matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case("like") || w.eq_ignore_ascii_case("in"))
                {
                    true
                } else {
                    self.at = save;
                    false
                }
            } else {
                false
            }
        };
        if self.keyword("like") {
            let pattern = match self.next()? {
                Token::Regex(r) => Pattern::Regex(r),
                Token::Str(s) => Pattern::Substring(s),
                other => return Err(format!("like needs /regex/ or a string, found {other:?}")),
            };
            return Ok(Expr::Like {
                negated,
                expr: Box::new(left),
                pattern,
            });
        }
        if self.keyword("in") {
            self.expect("[")?;
            let mut set = vec![self.primary()?];
            while self.sym(",") {
                set.push(self.primary()?);
            }
            self.expect("]")?;
            if set
                .iter()
                .any(|e| !matches!(e, Expr::Str(_) | Expr::Num(_)))
            {
                return Err("in [...] takes literals".into());
            }
            return Ok(Expr::In {
                negated,
                expr: Box::new(left),
                set,
            });
        }
        if negated {
            return Err("not must be followed by like or in here".into());
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next()? {
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::Num(n) => Ok(Expr::Num(n)),
            Token::Sym("*") => Ok(Expr::Star),
            Token::Sym("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Ident(name) if self.peek() == Some(&Token::Sym("(")) => {
                self.at += 1;
                let mut args = Vec::new();
                if !self.sym(")") {
                    args.push(self.or()?);
                    while self.sym(",") {
                        args.push(self.or()?);
                    }
                    self.expect(")")?;
                }
                check_call(&name, &args)?;
                Ok(Expr::Call(name.to_ascii_lowercase(), args))
            }
            Token::Ident(name) if !is_keyword(&name) => Ok(Expr::Field(name)),
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn check_call(name: &str, args: &[Expr]) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, arity)) = SCALAR_FUNCTIONS.iter().find(|(f, _)| *f == lower) {
        if args.len() != *arity || args.contains(&Expr::Star) {
            return Err(format!("{name} takes {arity} argument(s)"));
        }
        return Ok(());
    }
    if AGGREGATES.contains(&lower.as_str()) {
        let ok = match lower.as_str() {
            "count" => args.len() <= 1,
            _ => args.len() == 1 && args[0] != Expr::Star,
        };
        return if ok {
            Ok(())
        } else {
            Err(format!("{name}: wrong arguments"))
        };
    }
    Err(format!("unknown function {name}"))
}

fn is_keyword(word: &str) -> bool {
    ["and", "or", "not", "like", "in", "as", "by", "asc", "desc"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

/// The symbol as the `'static` the token holds.
fn leak(sym: &str) -> &'static str {
    [
        "!=", "<=", ">=", "|", ",", "(", ")", "[", "]", "=", "<", ">", "*",
    ]
    .into_iter()
    .find(|s| *s == sym)
    .expect("a known symbol")
}

fn render_tokens(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Ident(s) => out.push_str(s),
            Token::Str(s) => out.push_str(&format!("\"{s}\"")),
            Token::Num(n) => out.push_str(&n.to_string()),
            Token::Regex(r) => out.push_str(&format!("/{r}/")),
            Token::Sym(",") => out.push_str(", "),
            Token::Sym(s) => out.push_str(s),
        }
    }
    out
}

/// A parsed query: its commands in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub commands: Vec<Command>,
}

/// Parses `text`, refusing anything outside the checked subset.
pub fn parse(text: &str) -> Result<Query, String> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        at: 0,
    };
    let mut commands = vec![parser.command()?];
    while parser.sym("|") {
        commands.push(parser.command()?);
    }
    if let Some(extra) = parser.peek() {
        return Err(format!(
            "unexpected {extra:?} after command {}",
            commands.len()
        ));
    }
    if commands
        .iter()
        .filter(|c| matches!(c, Command::Stats { .. }))
        .count()
        > 1
    {
        return Err("more than one stats command".into());
    }
    Ok(Query { commands })
}

/// A query's result: its columns and rows, as the console shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Output {
    /// The column `name`'s values.
    pub fn column(&self, name: &str) -> Vec<Value> {
        let i = self.columns.iter().position(|c| c == name);
        self.rows
            .iter()
            .map(|r| i.map_or(Value::Null, |i| r[i].clone()))
            .collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<Vec<String>> = std::iter::once(self.columns.clone())
            .chain(
                self.rows
                    .iter()
                    .map(|r| r.iter().map(Value::to_string).collect()),
            )
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &cells {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            writeln!(f, "| {} |", line.join(" | "))?;
        }
        Ok(())
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Num(n) => *n != 0.0,
        Value::Str(_) | Value::Null => false,
    }
}

fn eval(expr: &Expr, row: &Row) -> Value {
    match expr {
        Expr::Field(f) => row.get(f).cloned().unwrap_or(Value::Null),
        Expr::Str(s) => Value::Str(s.clone()),
        Expr::Num(n) => Value::Num(*n),
        Expr::Star => Value::Null,
        Expr::Not(e) => Value::Bool(!truthy(&eval(e, row))),
        Expr::And(a, b) => Value::Bool(truthy(&eval(a, row)) && truthy(&eval(b, row))),
        Expr::Or(a, b) => Value::Bool(truthy(&eval(a, row)) || truthy(&eval(b, row))),
        Expr::Compare(op, a, b) => {
            let ordering = match (eval(a, row), eval(b, row)) {
                (Value::Num(x), Value::Num(y)) => x.partial_cmp(&y),
                (Value::Str(x), Value::Str(y)) => Some(x.cmp(&y)),
                (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(&y)),
                // A missing field, or values of different kinds, match no comparison.
                _ => None,
            };
            Value::Bool(ordering.is_some_and(|o| match *op {
                "=" => o.is_eq(),
                "!=" => o.is_ne(),
                "<" => o.is_lt(),
                "<=" => o.is_le(),
                ">" => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        Expr::Like {
            negated,
            expr,
            pattern,
        } => {
            let matched = match eval(expr, row) {
                Value::Str(s) => match pattern {
                    Pattern::Regex(r) => regex::Regex::new(r).expect("checked").is_match(&s),
                    Pattern::Substring(p) => s.contains(p.as_str()),
                },
                _ => return Value::Bool(false),
            };
            Value::Bool(matched != *negated)
        }
        Expr::In { negated, expr, set } => {
            let value = eval(expr, row);
            if value == Value::Null {
                return Value::Bool(false);
            }
            let member = set.iter().any(|e| eval(e, row) == value);
            Value::Bool(member != *negated)
        }
        Expr::Call(name, args) => {
            let args: Vec<Value> = args.iter().map(|a| eval(a, row)).collect();
            match (name.as_str(), &args[..]) {
                ("ispresent", [v]) => Value::Bool(*v != Value::Null),
                ("strcontains", [Value::Str(s), Value::Str(p)]) => {
                    Value::Num(if s.contains(p.as_str()) { 1.0 } else { 0.0 })
                }
                ("replace", [Value::Str(s), Value::Str(a), Value::Str(b)]) => {
                    Value::Str(s.replace(a.as_str(), b))
                }
                ("tolower", [Value::Str(s)]) => Value::Str(s.to_lowercase()),
                _ => Value::Null,
            }
        }
    }
}

fn aggregate(expr: &Expr, rows: &[&Row]) -> Value {
    let Expr::Call(name, args) = expr else {
        unreachable!("parse checked")
    };
    let values = || {
        rows.iter()
            .map(|r| eval(&args[0], r))
            .filter(|v| *v != Value::Null)
    };
    let by_time = |latest: bool| {
        let mut timed: Vec<(String, Value)> = rows
            .iter()
            .map(|r| {
                (
                    eval(&Expr::Field("@timestamp".into()), r).to_string(),
                    eval(&args[0], r),
                )
            })
            .filter(|(_, v)| *v != Value::Null)
            .collect();
        timed.sort_by(|a, b| a.0.cmp(&b.0));
        let pick = if latest {
            timed.pop()
        } else {
            timed.into_iter().next()
        };
        pick.map_or(Value::Null, |(_, v)| v)
    };
    let extreme = |max: bool| {
        let mut all: Vec<Value> = values().collect();
        all.sort_by(compare_values);
        (if max {
            all.pop()
        } else {
            all.into_iter().next()
        })
        .unwrap_or(Value::Null)
    };
    match name.as_str() {
        "count" if args.is_empty() || args[0] == Expr::Star => Value::Num(rows.len() as f64),
        "count" => Value::Num(values().count() as f64),
        "count_distinct" => {
            let distinct: std::collections::BTreeSet<String> =
                values().map(|v| v.to_string()).collect();
            Value::Num(distinct.len() as f64)
        }
        "earliest" => by_time(false),
        "latest" => by_time(true),
        "min" => extreme(false),
        _ => extreme(true),
    }
}

fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Runs `query` over `events` (in time order) as Logs Insights would.
pub fn run(query: &Query, events: &[Row]) -> Output {
    let mut rows: Vec<Row> = events.to_vec();
    let mut columns: Option<Vec<String>> = None;
    for command in &query.commands {
        match command {
            Command::Fields(fields) => {
                for row in &mut rows {
                    for (expr, name) in fields {
                        let value = eval(expr, row);
                        row.insert(name.clone(), value);
                    }
                }
                let mut list = columns.take().unwrap_or_default();
                list.extend(fields.iter().map(|(_, n)| n.clone()));
                columns = Some(list);
            }
            Command::Display(fields) => columns = Some(fields.clone()),
            Command::Filter(expr) => rows.retain(|r| truthy(&eval(expr, r))),
            Command::Stats { aggregates, by } => {
                let mut groups: BTreeMap<Vec<String>, Vec<&Row>> = BTreeMap::new();
                for row in &rows {
                    let key = by
                        .iter()
                        .map(|f| eval(&Expr::Field(f.clone()), row).to_string())
                        .collect();
                    groups.entry(key).or_default().push(row);
                }
                let mut out = Vec::new();
                for (key, members) in groups {
                    let mut row = Row::new();
                    for (field, value) in by.iter().zip(key) {
                        row.insert(field.clone(), Value::Str(value));
                    }
                    for (expr, name) in aggregates {
                        row.insert(name.clone(), aggregate(expr, &members));
                    }
                    out.push(row);
                }
                rows = out;
                columns = Some(
                    by.iter()
                        .cloned()
                        .chain(aggregates.iter().map(|(_, n)| n.clone()))
                        .collect(),
                );
            }
            Command::Sort(keys) => rows.sort_by(|a, b| {
                for (field, desc) in keys {
                    let get = |r: &Row| r.get(field).cloned().unwrap_or(Value::Null);
                    let order = compare_values(&get(a), &get(b));
                    let order = if *desc { order.reverse() } else { order };
                    if order.is_ne() {
                        return order;
                    }
                }
                std::cmp::Ordering::Equal
            }),
            Command::Limit(n) => rows.truncate(*n),
        }
    }
    let columns = columns.unwrap_or_else(|| vec!["@timestamp".into(), "@message".into()]);
    let rows = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    Output { columns, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        [
            r#"{"@timestamp":"1","user":{"username":"alice","extra":{"sessionName":[""]}},"verb":"get"}"#,
            r#"{"@timestamp":"2","user":{"username":"admin:bob-example.com","extra":{"sessionName":["bob@example.com"]}},"verb":"list"}"#,
            r#"{"@timestamp":"3","user":{"username":"shared","extra":{"sessionName":["carol"]}},"verb":"list"}"#,
            r#"{"@timestamp":"4","user":{"username":"shared","extra":{"sessionName":["dave"]}},"verb":"get"}"#,
        ]
        .iter()
        .map(|l| discover(&serde_json::from_str(l).unwrap()))
        .collect()
    }

    #[test]
    fn arrays_are_flattened_by_index() {
        let row = &rows()[1];
        assert_eq!(
            row["user.extra.sessionName.0"],
            Value::Str("bob@example.com".into())
        );
    }

    #[test]
    fn filter_stats_sort() {
        let q = parse(
            r#"filter strcontains(user.username, replace(user.extra.sessionName.0, "@", "-")) = 0
               | stats count(*) as requests, count_distinct(user.extra.sessionName.0) as people,
                 latest(verb) by user.username
               | sort requests desc"#,
        )
        .unwrap();
        let out = run(&q, &rows());
        assert_eq!(
            out.columns,
            ["user.username", "requests", "people", "latest(verb)"]
        );
        assert_eq!(
            out.rows,
            vec![vec![
                Value::Str("shared".into()),
                Value::Num(2.0),
                Value::Num(2.0),
                Value::Str("get".into())
            ]]
        );
    }

    #[test]
    fn like_in_and_not() {
        let q = parse(
            r#"fields @timestamp, user.username
               | filter user.username like /^admin:/ or (user.username in ["alice"] and not verb = "list")
               | filter user.username not like "shared"
               | limit 5"#,
        )
        .unwrap();
        let out = run(&q, &rows());
        assert_eq!(
            out.column("user.username"),
            vec![
                Value::Str("alice".into()),
                Value::Str("admin:bob-example.com".into())
            ]
        );
    }

    #[test]
    fn outside_the_subset_is_an_error() {
        for bad in [
            "parse @message /x/",
            "filter a = ",
            "filter a like /[/",
            "stats a by b",
            "fields nosuch(a)",
            "filter a = 1 | limit 0",
            "filter a in [b]",
            "fields a | fields",
            "filter \"unterminated",
            "stats count(*) | stats count(*)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
