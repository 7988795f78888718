"""HTML bodies as readable text, with the text of hidden elements kept apart.

Mail HTML hides text in many ways (preheaders, white-on-white, zero-size fonts, `display:none`).
A customer can use the same tricks to slip instructions past a human reader to the model, so what a
mail client would not show goes to `hidden`, never into `text`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from bs4 import (
    BeautifulSoup,
    MarkupResemblesLocatorWarning,
    NavigableString,
    Tag,
    XMLParsedAsHTMLWarning,
)
from bs4.element import PageElement, PreformattedString, Script, Stylesheet

# Mail HTML often starts with an XML declaration, or is a bare link: bs4 warns about both, once
# per message, to no use here.
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)

# Comments, CDATA, doctypes, processing instructions, script and style content: never shown.
_NOT_SHOWN = (PreformattedString, Script, Stylesheet)
_NOT_RENDERED = frozenset({"base", "link", "meta", "script", "style", "title"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1",
        "h2", "h3", "h4", "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_LISTS = frozenset({"ol", "ul"})
_CELLS = frozenset({"td", "th"})
_NO_LINK = ("#", "javascript:", "cid:", "data:")
_DECLARATION = re.compile(r"([a-z-]+)\s*:\s*([^;]*)")
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_CSS_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_CSS_NESTED = re.compile(r"@[^{}]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}")
_SIMPLE_SELECTOR = re.compile(r"^[a-z0-9]*([.#])([\w-]+)$", re.IGNORECASE)
_NUMBER = re.compile(r"^(-?\d*\.?\d+)\s*([a-z%]*)$")
_HEX = re.compile(r"^#([0-9a-f]{3}|[0-9a-f]{6})$")
_RGB = re.compile(r"^rgba?\(\s*(\d+)%?\s*,\s*(\d+)%?\s*,\s*(\d+)%?")
_WHITE_NAMES = frozenset({"white", "snow", "ivory", "whitesmoke", "ghostwhite", "floralwhite"})
_MAX_DEPTH = 8  # of the quote markers and list indents drawn on each line: bounds the output


@dataclass(frozen=True)
class HtmlText:
    text: str
    hidden: str


def parse_html(html: str) -> BeautifulSoup:
    """One parse shared by the text conversion and the reply cut (parsing is the costly part)."""
    return BeautifulSoup(html, "html.parser")


def html_to_text(html: str) -> HtmlText:
    rendering = render(parse_html(html))
    return HtmlText(text=rendering.text, hidden=rendering.hidden)


@dataclass(frozen=True)
class Rendering:
    """A document rendered once, and split where its quoted history starts (if it was told)."""

    text: str
    hidden: str  # of the whole document, history included
    before_cut: str
    from_cut: str


def render(root: Tag, *, cut: Tag | None = None) -> Rendering:
    renderer = _Renderer()
    renderer.walk(root, cut)
    lines = renderer.lines
    at = len(lines) if renderer.cut_at is None else renderer.cut_at
    return Rendering(
        text=_finish(lines),
        hidden="\n".join(renderer.hidden),
        before_cut=_finish(lines[:at]),
        from_cut=_finish(lines[at:]),
    )


def _finish(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


class _Renderer:
    """Walks the tree once, without recursion: mail HTML can nest thousands of unclosed tags."""

    def __init__(self) -> None:
        self.hidden_selectors: frozenset[str] = frozenset()  # grows with each <style> met
        self.lines: list[str] = []
        self.hidden: list[str] = []
        self.cut_at: int | None = None
        self.line: list[str] = []
        self.line_has_text = False
        self.written = 0  # pieces of text written so far, to tell whether a link showed any
        self.links: list[tuple[int, int, int]] = []  # where each open link started
        self.pending_bullet = ""  # a list item's bullet, written before the item's first text
        self.bullet = ""
        self.quote_depth = 0
        self.list_depth = 0
        self.pre_depth = 0

    def walk(self, root: Tag, cut: Tag | None) -> None:
        # (node, on a background, leaving): a tag is pushed again to be left after its children.
        stack: list[tuple[PageElement, bool, bool]] = [
            (child, False, False) for child in reversed(root.contents)
        ]
        while stack:
            node, background, leaving = stack.pop()
            if leaving:
                self.leave(node)  # type: ignore[arg-type]
                continue
            if node is cut:
                self.flush()
                self.cut_at = len(self.lines)
            if isinstance(node, NavigableString):
                if not isinstance(node, _NOT_SHOWN):
                    self.text(str(node))
                continue
            tag: Tag = node  # type: ignore[assignment]
            if tag.name == "style":
                self.hidden_selectors |= _hidden_selectors(tag.get_text())
            if tag.name in _NOT_RENDERED:
                continue
            hidden, on_background = self.look(tag, background)
            if hidden:
                self.keep_hidden(tag)
                continue
            self.enter(tag)
            stack.append((tag, background, True))
            stack.extend((child, on_background, False) for child in reversed(tag.contents))
        self.flush()

    def look(self, tag: Tag, background: bool) -> tuple[bool, bool]:
        """(whether the tag is hidden, whether its content sits on a coloured background)."""
        if tag.name == "template" or tag.has_attr("hidden"):
            return True, background
        if self.hidden_selectors and _selectors(tag) & self.hidden_selectors:
            return True, background
        style = tag.get("style")
        css = _declarations(style) if isinstance(style, str) else {}
        bgcolor = tag.get("bgcolor")
        if isinstance(bgcolor, str):
            css.setdefault("background-color", bgcolor.strip().lower())
        color = tag.get("color") if tag.name == "font" else None
        if isinstance(color, str):
            css.setdefault("color", color.strip().lower())
        if not css:
            return False, background
        background = background or _coloured(css.get("background-color") or css.get("background"))
        white_on_white = not background and _whitish(css.get("color"))
        return _hides(css) or white_on_white, background

    def keep_hidden(self, tag: Tag) -> None:
        strings = (
            str(node)
            for node in tag.descendants
            if isinstance(node, NavigableString) and not isinstance(node, _NOT_SHOWN)
        )
        text = " ".join(" ".join(strings).split())
        if text:
            self.hidden.append(text)

    def enter(self, tag: Tag) -> None:
        name = tag.name
        if name == "a":
            self.links.append((len(self.lines), len(self.line), self.written))
        elif name == "br":
            self.flush(force=True)
        elif name in _CELLS:
            if self.line_has_text:
                self.line.append(" | ")
        elif name in _BLOCKS:
            self.flush()
            if name == "blockquote":
                self.quote_depth += 1
            elif name in _LISTS:
                self.list_depth += 1
            elif name == "li":
                self.pending_bullet = "  " * min(max(self.list_depth - 1, 0), _MAX_DEPTH) + "- "
            elif name == "pre":
                self.pre_depth += 1

    def leave(self, tag: Tag) -> None:
        name = tag.name
        if name == "a":
            self.link(tag, *self.links.pop())
        elif name in _BLOCKS:
            self.flush()
            if name == "blockquote":
                self.quote_depth -= 1
            elif name in _LISTS:
                self.list_depth -= 1
            elif name == "pre":
                self.pre_depth -= 1

    def link(self, tag: Tag, line: int, part: int, written: int) -> None:
        """Write the target after the label of a link, when the label is not the target itself.

        The label is what the link rendered (its hidden parts left out), read from the output.
        """
        href = tag.get("href")
        if not isinstance(href, str) or self.written == written:
            return
        href = href.strip()
        if not href or href.lower().startswith(_NO_LINK):
            return
        spans_lines = line < len(self.lines)
        if spans_lines or not _same_target("".join(self.line[part:]), href):
            shown = href[7:] if href.lower().startswith("mailto:") else href
            self.text(f" ({shown})")

    def text(self, value: str) -> None:
        if self.pre_depth:
            first, *rest = value.split("\n")
            self.append(first)
            for line in rest:
                self.flush(force=True)
                self.append(line)
            return
        value = _SPACES.sub(" ", value)
        if value.startswith(" ") and (not self.line or self.line[-1].endswith(" ")):
            value = value[1:]
        self.append(value)

    def append(self, value: str) -> None:
        if not value:
            return
        if self.pending_bullet:
            if not value.strip():
                return
            self.bullet, self.pending_bullet = self.pending_bullet, ""
            value = value.lstrip()
        self.line.append(value)
        if not value.isspace():
            self.line_has_text = True
            self.written += 1

    def flush(self, *, force: bool = False) -> None:
        """End the current line; `force` (a `<br>`) ends it even when empty."""
        if not self.line and not force:
            return
        content = "".join(self.line).replace("\xa0", " ")
        content = content.rstrip() if self.pre_depth else content.strip()
        if content:
            content = self.bullet + content
        self.lines.append(("> " * min(self.quote_depth, _MAX_DEPTH) + content).rstrip())
        self.line = []
        self.line_has_text = False
        self.bullet = ""


def _declarations(style: str) -> dict[str, str]:
    return {
        name: value.replace("!important", "").strip()
        for name, value in _DECLARATION.findall(style.lower())
    }


def _hides(css: dict[str, str]) -> bool:
    if css.get("display") == "none" or css.get("visibility") in ("hidden", "collapse"):
        return True
    if css.get("mso-hide") == "all" or _at_most(css.get("opacity"), 0.0):
        return True
    if _at_most(css.get("font-size"), 1.0, units=("px", "pt")):
        return True
    if css.get("overflow") == "hidden" and any(
        _at_most(css.get(size), 0.0) for size in ("height", "max-height", "width", "max-width")
    ):
        return True
    return css.get("position") in ("absolute", "fixed") and any(
        _at_most(css.get(side), -500.0, units=("px",)) for side in ("left", "top")
    )


def _at_most(value: str | None, limit: float, *, units: tuple[str, ...] = ()) -> bool:
    """A CSS length or number no bigger than `limit`; zero counts whatever its unit."""
    if not value:
        return False
    match = _NUMBER.match(value)
    if not match:
        return False
    number, unit = float(match[1]), match[2]
    return number == 0 or (number <= limit and (not unit or unit in units))


def _whitish(color: str | None) -> bool:
    if not color:
        return False
    if color in _WHITE_NAMES:
        return True
    if match := _HEX.match(color):
        digits = match[1] if len(match[1]) == 6 else "".join(c * 2 for c in match[1])
        channels = [int(digits[i : i + 2], 16) for i in (0, 2, 4)]
    elif match := _RGB.match(color):
        channels = [int(match[i]) for i in (1, 2, 3)]
        if "%" in color:
            channels = [c * 255 // 100 for c in channels]
    else:
        return False
    return min(channels) >= 240


def _coloured(background: str | None) -> bool:
    """A background on which white text is readable."""
    if not background or background in ("transparent", "none", "inherit", "initial"):
        return False
    return not _whitish(background.split()[0])


def _same_target(label: str, href: str) -> bool:
    def bare(value: str) -> str:
        value = value.lower().strip().rstrip("/")
        for scheme in ("mailto:", "tel:", "https://", "http://", "www."):
            value = value.removeprefix(scheme)
        return value

    return bare(label) == bare(href)


def _selectors(tag: Tag) -> set[str]:
    classes = tag.get("class") or []
    found = {f".{name.lower()}" for name in classes}
    element_id = tag.get("id")
    if isinstance(element_id, str):
        found.add(f"#{element_id.lower()}")
    return found


def _hidden_selectors(css: str) -> frozenset[str]:
    """Classes and ids that top-level style rules hide, the usual way to hide a preheader.

    Rules inside `@media` blocks are left out: they hide one layout of content that is repeated
    for other screens, and counting them would drop visible text.
    """
    hidden: set[str] = set()
    for selectors, body in _CSS_RULE.findall(_CSS_NESTED.sub("", css)):
        if not _hides(_declarations(body)):
            continue
        for selector in selectors.split(","):
            match = _SIMPLE_SELECTOR.match(selector.strip())
            if match:
                hidden.add(f"{match[1]}{match[2].lower()}")
    return frozenset(hidden)
