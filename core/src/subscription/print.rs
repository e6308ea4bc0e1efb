//! Normalized printing: stable text for the inspector, the `subscribed` reply and the
//! interning key. Fields are sorted; ids with the same selection are grouped; the
//! text parses back to an equal subscription.

use std::fmt::{self, Write};

use super::{FieldSel, Sub, Subscription};

impl fmt::Display for Subscription {
    /// The compact normalized text, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.print(false))
    }
}

impl Subscription {
    /// The normalized text; `pretty` puts one field a line, indented by two spaces.
    pub fn print(&self, pretty: bool) -> String {
        let mut out = String::from("subscription {");
        let mut p = Printer {
            out: &mut out,
            pretty,
            depth: 1,
        };
        if self.workflows.is_empty() {
            p.line();
            p.out.push_str("workflows(ids: [])");
        } else {
            p.field("workflows", &self.workflows);
        }
        p.depth = 0;
        p.line();
        out.push('}');
        out
    }

    /// The interning key: equal subscriptions (however written) have equal keys.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

struct Printer<'a> {
    out: &'a mut String,
    pretty: bool,
    depth: usize,
}

impl Printer<'_> {
    /// A separator: a newline and indent when pretty, else one space.
    fn line(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        } else {
            self.out.push(' ');
        }
    }

    fn field(&mut self, name: &str, field: &FieldSel) {
        if let Some(every) = &field.every {
            self.line();
            self.out.push_str(name);
            self.sub(every);
        }
        // Ids with equal selections share one `name(ids: [...])`.
        let mut groups: Vec<(&Sub, Vec<&str>)> = Vec::new();
        for (id, sub) in &field.ids {
            match groups.iter_mut().find(|(s, _)| *s == sub) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((sub, vec![id])),
            }
        }
        for (sub, ids) in groups {
            self.line();
            self.out.push_str(name);
            self.out.push_str("(ids: [");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                // JSON string escapes are valid GraphQL string escapes.
                let _ = write!(self.out, "{}", serde_json::Value::from(*id));
            }
            self.out.push_str("])");
            self.sub(sub);
        }
    }

    fn sub(&mut self, sub: &Sub) {
        let Sub::Fields(fields) = sub else { return };
        self.out.push_str(" {");
        self.depth += 1;
        for (name, field) in fields {
            self.field(name, field);
        }
        self.depth -= 1;
        self.line();
        self.out.push('}');
    }
}
