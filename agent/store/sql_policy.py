"""What SQL a person wrote may do, decided on the engine's own parse tree.

The engine parses the statement (`EXPLAIN AST`, which parses and prints without analysing or
running anything: no file is opened, no URL fetched, no table read) and this module walks the
tree it printed. Nothing here reads the SQL text itself, so comment-split names, quoted names,
odd spacing and case tricks are seen exactly as the engine will see them.

The walk fails closed: a node kind not listed as allowed, a line that does not parse, or a tree
whose declared child counts do not add up (an identifier holding a newline can print extra
lines) refuses the statement. The read-only session it then runs in (sandbox.py) stops writes,
DDL and setting changes on its own; this policy closes what read-only mode leaves open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# EXPLAIN AST prints one node per line: indent, kind, an optional name, an optional alias,
# and "(children N)" when the node has children.
LINE = re.compile(r"^(?P<indent> *)(?P<kind>[A-Za-z]+)(?P<rest>.*?)(?: \(children (?P<n>\d+)\))?$")
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$")

# Statements a person may run.
STATEMENTS = frozenset({"SelectWithUnionQuery", "DescribeQuery", "ShowTables"})
# Node kinds a reading query is made of. Anything else (Set: a SETTINGS clause; an INSERT,
# DDL, SYSTEM or KILL node; kinds a newer engine adds) refuses the statement.
NODES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList",
    "Function", "Identifier", "Literal", "Asterisk", "QualifiedAsterisk", "ColumnsRegexpMatcher",
    "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher",
    "ColumnsTransformerList", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
    "ColumnsApplyTransformer", "ColumnsReplaceTransformerReplacement", "TablesInSelectQuery",
    "TablesInSelectQueryElement", "TableExpression", "TableIdentifier", "TableJoin",
    "ArrayJoin", "Subquery", "OrderByElement", "WindowListElement", "WindowDefinition",
    "WithElement", "QueryParameter", "SampleRatio", "InterpolateElement", "DataType",
    "NameTypePair", "ColumnDeclaration", "Lambda", "DescribeQuery", "ShowTables",
})
# Table functions that only make numbers up.
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "values",
                             "generate_series", "generateseries", "primes", "null"})
# Functions that read something other than their arguments: files, models, dictionaries and
# tables named in a string (dictionaries and Join tables can live outside the database).
READERS = frozenset({"file", "catboostevaluate", "joinget", "joingetornull",
                     "hascolumnintable", "getsubcolumn"})
READER_PREFIXES = ("dictget", "dicthas", "dictisin")
# Whose second argument may name a table: `x IN system.users` reads that table.
IN_FUNCTIONS = frozenset({"in", "notin", "globalin", "globalnotin", "nullin", "notnullin",
                          "globalnullin", "globalnotnullin"})
# Result formats: clickhouse-connect asks for Native itself.
FORMATS = frozenset({"native"})


class QueryRefused(ValueError):
    """The statement does something user SQL may not; the message says what."""


@dataclass
class Node:
    kind: str
    text: str  # what follows the kind: a name, a literal, an alias
    declared: int
    depth: int
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The first word: a function's or identifier's name (names with spaces are never
        functions, so a word is enough to recognise one)."""
        return self.text.split(" ", 1)[0]

    @property
    def qualified_name(self) -> str:
        """A table's whole name, without its alias; a name with a space fails TABLE_NAME."""
        return self.text.split(" (alias ", 1)[0]


def parse(lines: Sequence[str]) -> Node:
    """The tree EXPLAIN AST printed; any line or count that does not fit refuses."""
    stack: list[Node] = []
    root: Node | None = None
    for line in lines:
        match = LINE.match(line)
        if match is None:
            raise QueryRefused("the statement could not be read safely (unexpected parse tree)")
        depth = len(match["indent"])
        node = Node(match["kind"], match["rest"].strip(), int(match["n"] or 0), depth)
        while stack and stack[-1].depth >= depth:
            stack.pop()
        if not stack:
            if root is not None or depth != 0:
                raise QueryRefused("only one statement is allowed")
            root = node
        elif depth != stack[-1].depth + 1:
            raise QueryRefused("the statement could not be read safely (unexpected parse tree)")
        else:
            stack[-1].children.append(node)
        stack.append(node)
    if root is None:
        raise QueryRefused("empty statement")
    _check_counts(root)
    return root


def _check_counts(node: Node) -> None:
    if len(node.children) != node.declared:
        raise QueryRefused("the statement could not be read safely (unexpected parse tree)")
    for child in node.children:
        _check_counts(child)


@dataclass(frozen=True)
class Policy:
    """Reading the Watchkeeper database, a few named system tables and made-up numbers."""

    database: str
    system_tables: frozenset[str]
    # every table function the engine knows, lower-cased: all are refused but TABLE_FUNCTIONS
    engine_table_functions: frozenset[str]

    def check(self, ast_lines: Sequence[str]) -> None:
        root = parse(ast_lines)
        if root.kind not in STATEMENTS:
            raise QueryRefused(f"only SELECT, DESCRIBE and SHOW TABLES are allowed, not "
                               f"{_statement(root.kind)}")
        if root.kind == "SelectWithUnionQuery":
            self._top_level(root)
        elif root.kind == "ShowTables" and any(c.kind != "Identifier" or c.name.lower()
                                               not in FORMATS for c in root.children):
            raise QueryRefused("SHOW TABLES lists the Watchkeeper database only (no FROM, "
                               "LIKE or FORMAT)")
        for node in _walk(root):
            self._node(node)

    def _top_level(self, root: Node) -> None:
        """After the query itself come INTO OUTFILE (a literal), SETTINGS, and FORMAT."""
        for extra in root.children[1:]:
            if extra.kind == "Literal":
                raise QueryRefused("INTO OUTFILE is not allowed: results come back in the "
                                   "answer")
            if extra.kind == "Identifier" and extra.name.lower() not in FORMATS:
                raise QueryRefused("FORMAT is not allowed: results come back as JSON")

    def _node(self, node: Node) -> None:
        if node.kind not in NODES:
            if node.kind == "Set":
                raise QueryRefused("SETTINGS is not allowed: limits are set by the operator")
            raise QueryRefused(f"{node.kind} is not allowed in user SQL")
        if node.kind == "TableIdentifier":
            self._table(node.qualified_name)
        elif node.kind == "Function":
            name = node.name.lower()
            if name in self.engine_table_functions and name not in TABLE_FUNCTIONS:
                raise QueryRefused(f"table function {node.name} is not allowed (allowed: "
                                   f"{', '.join(sorted(TABLE_FUNCTIONS))})")
            if name in READERS or name.startswith(READER_PREFIXES):
                raise QueryRefused(f"function {node.name} reads outside the query and is not "
                                   "allowed")
            if name in IN_FUNCTIONS:
                arguments = node.children[0].children if node.children else []
                for argument in arguments[1:]:
                    if argument.kind == "Identifier" and "." in argument.qualified_name:
                        self._table(argument.qualified_name)

    def _table(self, name: str) -> None:
        if not TABLE_NAME.match(name):
            raise QueryRefused(f"table name {name!r} is not allowed")
        database, _, table = name.rpartition(".")
        if not database or database == self.database:
            return
        if database == "system" and table in self.system_tables:
            return
        raise QueryRefused(f"table {name} is outside the {self.database} database (readable "
                           f"system tables: {', '.join(sorted(self.system_tables))})")


def _walk(node: Node) -> Iterable[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _statement(kind: str) -> str:
    """A node kind as a reader knows it: InsertQuery -> INSERT."""
    return re.sub(r"Query$", "", kind).upper() or kind
