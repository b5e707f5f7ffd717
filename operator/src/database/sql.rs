//! Quoting for the DDL the operator builds. DDL cannot take bind parameters, so every
//! identifier and literal goes through these two functions; nothing else builds SQL text from
//! input.

/// `"name"`, with embedded double quotes doubled (Postgres' `quote_ident`, always quoting).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded single quotes doubled; when backslashes occur, the `E'...'` form with
/// them doubled too, so the result means the same whatever `standard_conforming_strings` is
/// (Postgres' `quote_literal`). NUL bytes, which no Postgres text can hold, are dropped.
pub fn literal(text: &str) -> String {
    let escaped = text.replace('\0', "").replace('\'', "''");
    if escaped.contains('\\') { format!("E'{}'", escaped.replace('\\', "\\\\")) } else { format!("'{escaped}'") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(ident("ms_a_b"), "\"ms_a_b\"");
        assert_eq!(ident("x\"; DROP SCHEMA public; --"), "\"x\"\"; DROP SCHEMA public; --\"");
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\'; DROP ROLE x; --"), "E'a\\\\''; DROP ROLE x; --'");
        assert_eq!(literal("nul\0byte"), "'nulbyte'");
    }
}
