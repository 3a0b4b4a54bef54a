"""The grammar of the OTTL subset (parsed by lark, LALR): conditions on a span or a span event.

Paths (`name`, `attributes["k"]`, `resource.attributes["k"]`, ... with optional
`span.`/`spanevent.` context prefixes), literals (strings, numbers, true/false, nil,
enums such as SPAN_KIND_SERVER), arithmetic, comparisons, `and`/`or`/`not`,
parentheses and function calls; compile.py gives them meaning.
"""

from __future__ import annotations

import lark

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | comparison
?comparison: sum (COMPARATOR sum)?
?sum: product (ADDITIVE product)*
?product: unary (MULTIPLICATIVE unary)*
?unary: "-" unary -> negative
      | atom
?atom: literal
     | path
     | call
     | UPPER_NAME -> enum
     | "(" or_expr ")"
call: UPPER_NAME "(" [or_expr ("," or_expr)*] ")"
path: LOWER_NAME ("." LOWER_NAME)* key*
key: "[" (STRING | INT) "]"
literal: STRING -> string
       | FLOAT -> float
       | INT -> int
       | _TRUE -> true
       | _FALSE -> false
       | _NIL -> nil

_OR.2: /or(?![A-Za-z0-9_])/
_AND.2: /and(?![A-Za-z0-9_])/
_NOT.2: /not(?![A-Za-z0-9_])/
_TRUE.2: /true(?![A-Za-z0-9_])/
_FALSE.2: /false(?![A-Za-z0-9_])/
_NIL.2: /nil(?![A-Za-z0-9_])/
COMPARATOR: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADDITIVE: "+" | "-"
MULTIPLICATIVE: "*" | "/"
UPPER_NAME: /[A-Z][A-Za-z0-9_]*/
LOWER_NAME: /[a-z_][a-z0-9_]*/
STRING: /"(\\.|[^"\\])*"/
FLOAT: /[0-9]+\.[0-9]*([eE][+-]?[0-9]+)?/ | /[0-9]+[eE][+-]?[0-9]+/
INT: /[0-9]+/
%ignore /[ \t\r\n]+/
"""

_PARSER = lark.Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)


def parse(text: str) -> lark.Tree[lark.Token]:
    """The syntax tree of one condition; ValueError pointing at the column of a syntax error."""
    try:
        return _PARSER.parse(text)
    except lark.UnexpectedInput as exc:
        caret = " " * (exc.column - 1) + "^" if exc.column and exc.column > 0 else ""
        expected = ""
        if isinstance(exc, lark.UnexpectedToken) and exc.expected:
            expected = "; expected one of: " + ", ".join(sorted(exc.expected))
        raise ValueError(f"syntax error at column {exc.column}{expected}\n      {text}\n      {caret}") from None
