//! Parsing subscription text with `graphql-parser`, then checking what this protocol
//! allows: one operation, the root field `workflows`, `ids` as the only argument,
//! and the [`Limits`].

use std::collections::BTreeMap;
use std::fmt;

use graphql_parser::query::{
    Definition, Field, OperationDefinition, Selection, SelectionSet, Value as GqlValue,
};
use graphql_parser::Pos;

use super::{FieldSel, Limits, Sub, Subscription};
use crate::schema::Schema;

/// A query that cannot be used, with where (when known) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    /// One-based line of the problem, when known.
    pub line: Option<usize>,
    /// One-based column of the problem, when known.
    pub column: Option<usize>,
    /// What is wrong, for a person.
    pub message: String,
}

impl QueryError {
    fn at(pos: Pos, message: impl Into<String>) -> QueryError {
        QueryError {
            line: Some(pos.line),
            column: Some(pos.column),
            message: message.into(),
        }
    }

    fn nowhere(message: impl Into<String>) -> QueryError {
        QueryError {
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for QueryError {}

impl Subscription {
    /// Parses and normalizes subscription text, within `limits`.
    pub fn parse(text: &str, limits: &Limits) -> Result<Subscription, QueryError> {
        if text.len() > limits.max_query_bytes {
            return Err(QueryError::nowhere(format!(
                "the query is {} bytes; the limit is {}",
                text.len(),
                limits.max_query_bytes
            )));
        }
        // The parser recurses; refuse deep nesting before it sees the text.
        check_nesting(text, limits.max_depth + 3)?;
        let document = graphql_parser::parse_query::<String>(text).map_err(syntax_error)?;
        let mut operations = document.definitions.iter();
        let selection_set = match (operations.next(), operations.next()) {
            (None, _) => return Err(QueryError::nowhere("the query is empty")),
            (Some(_), Some(second)) => {
                return Err(QueryError::at(
                    definition_pos(second),
                    "only one operation is allowed",
                ))
            }
            (Some(Definition::Fragment(f)), None) => {
                return Err(QueryError::at(f.position, "fragments are not supported"))
            }
            (Some(Definition::Operation(op)), None) => match op {
                OperationDefinition::SelectionSet(set) => set,
                OperationDefinition::Subscription(s) => {
                    if !s.variable_definitions.is_empty() {
                        return Err(QueryError::at(s.position, "variables are not supported"));
                    }
                    if !s.directives.is_empty() {
                        return Err(QueryError::at(s.position, "directives are not supported"));
                    }
                    &s.selection_set
                }
                OperationDefinition::Query(q) => {
                    return Err(QueryError::at(
                        q.position,
                        "write `subscription { ... }` or a bare `{ ... }`, not a query",
                    ))
                }
                OperationDefinition::Mutation(m) => {
                    return Err(QueryError::at(m.position, "mutations are not supported"))
                }
            },
        };
        let mut counts = Counts::default();
        let mut workflows = FieldSel::default();
        for selection in &selection_set.items {
            let field = plain_field(selection)?;
            if field.name != "workflows" {
                return Err(QueryError::at(
                    field.position,
                    format!("the root field must be `workflows`, not `{}`", field.name),
                ));
            }
            workflows = workflows.union(&field_sel(field, 1, limits, &mut counts)?);
        }
        Ok(Subscription { workflows })
    }

    /// Checks the subscription against a suite's schema: `ids` only on collections.
    pub fn check(&self, schema: &Schema) -> Result<(), QueryError> {
        let mut errors = Vec::new();
        for sub in self.workflows.every.iter().chain(self.workflows.ids.values()) {
            check_sub(sub, &mut Vec::new(), schema, &mut errors);
        }
        match errors.into_iter().next() {
            None => Ok(()),
            Some(path) => Err(QueryError::nowhere(format!(
                "`ids` is given on `{path}`, which is not a collection"
            ))),
        }
    }

    /// Checks a merged subscription against the limits (parts may each be within them).
    pub fn check_limits(&self, limits: &Limits) -> Result<(), QueryError> {
        let mut counts = Counts::default();
        count_field(&self.workflows, 1, &mut counts);
        counts.check(limits, None)
    }
}

fn check_sub(sub: &Sub, pattern: &mut Vec<String>, schema: &Schema, errors: &mut Vec<String>) {
    let Sub::Fields(fields) = sub else { return };
    for (name, field) in fields {
        pattern.push(name.clone());
        let collection = schema.is_collection(pattern);
        if !collection && !field.ids.is_empty() {
            errors.push(pattern.join("."));
        }
        if collection {
            pattern.push("*".into());
        }
        for inner in field.every.iter().chain(field.ids.values()) {
            check_sub(inner, pattern, schema, errors);
        }
        if collection {
            pattern.pop();
        }
        pattern.pop();
    }
}

#[derive(Default)]
struct Counts {
    fields: usize,
    ids: usize,
    depth: usize,
}

impl Counts {
    fn check(&self, limits: &Limits, pos: Option<Pos>) -> Result<(), QueryError> {
        let problem = if self.depth > limits.max_depth {
            format!(
                "selections nest {} deep; the limit is {}",
                self.depth, limits.max_depth
            )
        } else if self.fields > limits.max_fields {
            format!(
                "the query selects {} fields; the limit is {}",
                self.fields, limits.max_fields
            )
        } else if self.ids > limits.max_ids {
            format!(
                "the query names {} ids; the limit is {}",
                self.ids, limits.max_ids
            )
        } else {
            return Ok(());
        };
        Err(match pos {
            Some(pos) => QueryError::at(pos, problem),
            None => QueryError::nowhere(problem),
        })
    }
}

fn count_field(field: &FieldSel, depth: usize, counts: &mut Counts) {
    counts.fields += 1;
    counts.ids += field.ids.len();
    counts.depth = counts.depth.max(depth);
    for sub in field.every.iter().chain(field.ids.values()) {
        if let Sub::Fields(fields) = sub {
            for inner in fields.values() {
                count_field(inner, depth + 1, counts);
            }
        }
    }
}

/// A field with no alias, directives or fragments.
fn plain_field<'a, 'b>(selection: &'b Selection<'a, String>) -> Result<&'b Field<'a, String>, QueryError> {
    match selection {
        Selection::Field(field) => {
            if field.alias.is_some() {
                return Err(QueryError::at(field.position, "aliases are not supported"));
            }
            if !field.directives.is_empty() {
                return Err(QueryError::at(field.position, "directives are not supported"));
            }
            Ok(field)
        }
        Selection::FragmentSpread(f) => Err(QueryError::at(f.position, "fragments are not supported")),
        Selection::InlineFragment(f) => Err(QueryError::at(f.position, "fragments are not supported")),
    }
}

fn field_sel(
    field: &Field<'_, String>,
    depth: usize,
    limits: &Limits,
    counts: &mut Counts,
) -> Result<FieldSel, QueryError> {
    counts.fields += 1;
    counts.depth = counts.depth.max(depth);
    counts.check(limits, Some(field.position))?;
    let mut ids: Option<Vec<String>> = None;
    for (name, value) in &field.arguments {
        if name != "ids" {
            return Err(QueryError::at(
                field.position,
                format!("unknown argument `{name}`: only `ids` is supported"),
            ));
        }
        if ids.is_some() {
            return Err(QueryError::at(field.position, "`ids` is given twice"));
        }
        let list = match value {
            GqlValue::String(id) => vec![id.clone()],
            GqlValue::List(items) => items
                .iter()
                .map(|item| match item {
                    GqlValue::String(id) => Ok(id.clone()),
                    _ => Err(QueryError::at(field.position, "`ids` must be a list of strings")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(QueryError::at(field.position, "`ids` must be a list of strings")),
        };
        counts.ids += list.len();
        counts.check(limits, Some(field.position))?;
        ids = Some(list);
    }
    let sub = sub_of(&field.selection_set, depth, limits, counts)?;
    Ok(match (ids, sub) {
        (_, None) => FieldSel::default(),
        (None, Some(sub)) => FieldSel {
            every: Some(sub),
            ids: BTreeMap::new(),
        },
        (Some(list), Some(sub)) => {
            FieldSel::normalized(None, list.into_iter().map(|id| (id, sub.clone())).collect())
        }
    })
}

/// The selection below a field; `None` when it selects nothing (e.g. `ids: []` inside).
fn sub_of(
    set: &SelectionSet<'_, String>,
    depth: usize,
    limits: &Limits,
    counts: &mut Counts,
) -> Result<Option<Sub>, QueryError> {
    if set.items.is_empty() {
        return Ok(Some(Sub::All));
    }
    let mut fields: BTreeMap<String, FieldSel> = BTreeMap::new();
    for selection in &set.items {
        let field = plain_field(selection)?;
        let sel = field_sel(field, depth + 1, limits, counts)?;
        let merged = match fields.get(&field.name) {
            Some(before) => before.union(&sel),
            None => sel,
        };
        fields.insert(field.name.clone(), merged);
    }
    fields.retain(|_, f| !f.is_empty());
    Ok((!fields.is_empty()).then_some(Sub::Fields(fields)))
}

fn definition_pos(definition: &Definition<'_, String>) -> Pos {
    match definition {
        Definition::Fragment(f) => f.position,
        Definition::Operation(OperationDefinition::SelectionSet(s)) => s.span.0,
        Definition::Operation(OperationDefinition::Query(q)) => q.position,
        Definition::Operation(OperationDefinition::Mutation(m)) => m.position,
        Definition::Operation(OperationDefinition::Subscription(s)) => s.position,
    }
}

/// Turns the parser's message ("Parse error at 1:12\nUnexpected ...") into a
/// [`QueryError`] with the position pulled out.
fn syntax_error(error: graphql_parser::query::ParseError) -> QueryError {
    let text = error.to_string();
    let text = text.strip_prefix("query parse error: ").unwrap_or(&text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("syntax error");
    let rest: Vec<&str> = lines.collect();
    let position = first
        .strip_prefix("Parse error at ")
        .and_then(|p| p.split_once(':'))
        .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)));
    let detail = if rest.is_empty() {
        "syntax error".to_owned()
    } else {
        format!("syntax error: {}", rest.join("; "))
    };
    match position {
        Some((line, column)) => QueryError {
            line: Some(line),
            column: Some(column),
            message: detail,
        },
        None => QueryError::nowhere(format!("syntax error: {first}")),
    }
}

/// Refuses text whose brackets nest deeper than `max` before the recursive parser runs.
fn check_nesting(text: &str, max: usize) -> Result<(), QueryError> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut chars = text.chars();
    let mut in_string = false;
    let mut in_comment = false;
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            in_comment = false;
            continue;
        }
        if in_comment {
            continue;
        }
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                    column += 1;
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' => in_string = true,
            '{' | '(' | '[' => {
                depth += 1;
                if depth > max {
                    return Err(QueryError {
                        line: Some(line),
                        column: Some(column),
                        message: format!("the query nests deeper than {max} levels"),
                    });
                }
            }
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}
