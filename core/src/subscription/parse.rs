//! Parsing subscription text with `apollo-parser` (a lossless, error-tolerant GraphQL
//! parser), then checking what this protocol allows: one operation, the root field
//! `workflows`, `ids` as the only argument, and the [`SubscriptionLimits`].

use std::collections::BTreeMap;
use std::fmt;

use apollo_parser::cst::{self, CstNode};
use apollo_parser::Parser;

use super::{FieldSel, Sub, Subscription, SubscriptionLimits};
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

/// A one-based line and column (in characters).
#[derive(Clone, Copy, Debug)]
struct Pos {
    line: usize,
    column: usize,
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

/// The query text, to turn the parser's byte offsets into lines and columns.
struct Source<'a>(&'a str);

impl Source<'_> {
    fn pos_of_offset(&self, offset: usize) -> Pos {
        let before = self.0.get(..offset.min(self.0.len())).unwrap_or(self.0);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// Where a node starts (its first token; ignored tokens come after a node's last).
    fn pos(&self, node: &impl CstNode) -> Pos {
        let syntax = node.syntax();
        let start = syntax
            .first_token()
            .map_or(syntax.text_range().start(), |t| t.text_range().start());
        self.pos_of_offset(u32::from(start) as usize)
    }

    fn at(&self, node: &impl CstNode, message: impl Into<String>) -> QueryError {
        QueryError::at(self.pos(node), message)
    }
}

impl Subscription {
    /// Parses and normalizes subscription text, within `limits`.
    pub fn parse(text: &str, limits: &SubscriptionLimits) -> Result<Subscription, QueryError> {
        if text.len() > limits.max_query_bytes {
            return Err(QueryError::nowhere(format!(
                "the query is {} bytes; the limit is {}",
                text.len(),
                limits.max_query_bytes
            )));
        }
        // The parser recurses; refuse deep nesting before it sees the text.
        check_nesting(text, limits.max_depth + 3)?;
        let source = Source(text);
        let tree = Parser::new(text).parse();
        if let Some(error) = tree.errors().next() {
            return Err(QueryError::at(
                source.pos_of_offset(error.index()),
                format!("syntax error: {}", error.message()),
            ));
        }
        let document = tree.document();
        let mut definitions = document.definitions();
        let operation = match (definitions.next(), definitions.next()) {
            (None, _) => return Err(QueryError::nowhere("the query is empty")),
            (Some(_), Some(second)) => return Err(source.at(&second, "only one operation is allowed")),
            (Some(cst::Definition::OperationDefinition(op)), None) => op,
            (Some(cst::Definition::FragmentDefinition(f)), None) => {
                return Err(source.at(&f, "fragments are not supported"))
            }
            (Some(other), None) => {
                return Err(source.at(
                    &other,
                    "write `subscription { ... }` or a bare `{ ... }`, not a type definition",
                ))
            }
        };
        if let Some(kind) = operation.operation_type() {
            if kind.query_token().is_some() {
                return Err(source.at(
                    &operation,
                    "write `subscription { ... }` or a bare `{ ... }`, not a query",
                ));
            }
            if kind.mutation_token().is_some() {
                return Err(source.at(&operation, "mutations are not supported"));
            }
        }
        if operation
            .variable_definitions()
            .is_some_and(|v| v.variable_definitions().next().is_some())
        {
            return Err(source.at(&operation, "variables are not supported"));
        }
        if operation
            .directives()
            .is_some_and(|d| d.directives().next().is_some())
        {
            return Err(source.at(&operation, "directives are not supported"));
        }
        let Some(selection_set) = operation.selection_set() else {
            return Err(source.at(&operation, "the subscription has no selection set"));
        };
        let mut counts = Counts::default();
        let mut workflows = FieldSel::default();
        let parser = FieldParser {
            source: &source,
            limits,
        };
        for selection in selection_set.selections() {
            let field = parser.plain_field(&selection)?;
            let name = field_name(&field);
            if name != "workflows" {
                return Err(source.at(
                    &field,
                    format!("the root field must be `workflows`, not `{name}`"),
                ));
            }
            workflows = workflows.union(&parser.field_sel(&field, 1, &mut counts)?);
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
    pub fn check_limits(&self, limits: &SubscriptionLimits) -> Result<(), QueryError> {
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
    fn check(&self, limits: &SubscriptionLimits, pos: Option<Pos>) -> Result<(), QueryError> {
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

fn field_name(field: &cst::Field) -> String {
    field.name().map(|n| n.text().to_string()).unwrap_or_default()
}

/// Turns parsed fields into selections, with positions and limits at hand.
struct FieldParser<'a> {
    source: &'a Source<'a>,
    limits: &'a SubscriptionLimits,
}

impl FieldParser<'_> {
    /// A field with no alias, directives or fragments.
    fn plain_field(&self, selection: &cst::Selection) -> Result<cst::Field, QueryError> {
        match selection {
            cst::Selection::Field(field) => {
                if field.alias().is_some() {
                    return Err(self.source.at(field, "aliases are not supported"));
                }
                if field
                    .directives()
                    .is_some_and(|d| d.directives().next().is_some())
                {
                    return Err(self.source.at(field, "directives are not supported"));
                }
                Ok(field.clone())
            }
            cst::Selection::FragmentSpread(f) => Err(self.source.at(f, "fragments are not supported")),
            cst::Selection::InlineFragment(f) => Err(self.source.at(f, "fragments are not supported")),
        }
    }

    fn field_sel(
        &self,
        field: &cst::Field,
        depth: usize,
        counts: &mut Counts,
    ) -> Result<FieldSel, QueryError> {
        let pos = self.source.pos(field);
        counts.fields += 1;
        counts.depth = counts.depth.max(depth);
        counts.check(self.limits, Some(pos))?;
        let mut ids: Option<Vec<String>> = None;
        for argument in field.arguments().iter().flat_map(|a| a.arguments()) {
            let name = argument.name().map(|n| n.text().to_string()).unwrap_or_default();
            if name != "ids" {
                return Err(QueryError::at(
                    pos,
                    format!("unknown argument `{name}`: only `ids` is supported"),
                ));
            }
            if ids.is_some() {
                return Err(QueryError::at(pos, "`ids` is given twice"));
            }
            let not_strings = || QueryError::at(pos, "`ids` must be a list of strings");
            let list = match argument.value() {
                Some(cst::Value::StringValue(id)) => vec![String::from(&id)],
                Some(cst::Value::ListValue(items)) => items
                    .values()
                    .map(|item| match item {
                        cst::Value::StringValue(id) => Ok(String::from(&id)),
                        _ => Err(not_strings()),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(not_strings()),
            };
            counts.ids += list.len();
            counts.check(self.limits, Some(pos))?;
            ids = Some(list);
        }
        let sub = match field.selection_set() {
            None => Some(Sub::All),
            Some(set) => self.sub_of(&set, depth, counts)?,
        };
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
        &self,
        set: &cst::SelectionSet,
        depth: usize,
        counts: &mut Counts,
    ) -> Result<Option<Sub>, QueryError> {
        let mut fields: BTreeMap<String, FieldSel> = BTreeMap::new();
        for selection in set.selections() {
            let field = self.plain_field(&selection)?;
            let sel = self.field_sel(&field, depth + 1, counts)?;
            let name = field_name(&field);
            let merged = match fields.get(&name) {
                Some(before) => before.union(&sel),
                None => sel,
            };
            fields.insert(name, merged);
        }
        fields.retain(|_, f| !f.is_empty());
        Ok((!fields.is_empty()).then_some(Sub::Fields(fields)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> QueryError {
        Subscription::parse(text, &SubscriptionLimits::default()).unwrap_err()
    }

    #[test]
    fn errors_say_where_in_lines_and_characters() {
        let e = error("subscription {\n  workflows {\n    taskProxies { name \n}");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.starts_with("syntax error: "), "{e}");
        // Columns count characters, not bytes.
        let e = error("{\n workflows(ids: [\"é\"]) { x: taskProxies } }");
        assert_eq!((e.line, e.column), (Some(2), Some(26)), "{e}");
        assert!(e.message.contains("alias"), "{e}");
        let e = error("{ workflows { taskProxies { } } }");
        assert!(e.message.starts_with("syntax error"), "{e}");
        let e = error("{ workflows { a } }\n{ workflows { b } }");
        assert_eq!((e.line, e.column), (Some(2), Some(1)), "{e}");
        let e = error("type T { a: Int }");
        assert!(e.message.contains("type definition"), "{e}");
        let e = error("fragment F on T { a }");
        assert!(e.message.contains("fragments"), "{e}");
        let e = error("{ workflows { ...F } }");
        assert_eq!((e.line, e.column), (Some(1), Some(15)), "{e}");
        let e = error("subscription S($a: Int) { workflows }");
        assert!(e.message.contains("variables"), "{e}");
        let e = error("subscription @x { workflows }");
        assert!(e.message.contains("directives"), "{e}");
        let e = error("mutation { workflows }");
        assert!(e.message.contains("mutations"), "{e}");
        let e = error("{ workflows(ids: [1]) }");
        assert!(e.message.contains("list of strings"), "{e}");
        let e = error("");
        assert!(
            e.message.contains("empty") || e.message.starts_with("syntax"),
            "{e}"
        );
    }

    #[test]
    fn names_escapes_and_single_ids_are_read() {
        let limits = SubscriptionLimits::default();
        let named = Subscription::parse(
            "subscription Live { workflows(ids: \"a\\u00e9\") { edges } }",
            &limits,
        )
        .unwrap();
        let plain = Subscription::parse("{ workflows(ids: [\"aé\"]) { edges } }", &limits).unwrap();
        assert_eq!(named, plain);
        assert_eq!(
            plain.to_string(),
            "subscription { workflows(ids: [\"aé\"]) { edges } }"
        );
    }
}
