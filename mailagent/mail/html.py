"""HTML bodies as readable text, with the text of hidden elements kept apart.

Mail HTML hides text in many ways (preheaders, white-on-white, zero-size fonts, `display:none`).
A customer can use the same tricks to slip instructions past a human reader to the model, so what a
mail client would not show goes to `hidden`, never into `text`.
"""

from __future__ import annotations

import html as entities
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
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_COMPOUND = re.compile(r"([a-z][\w-]*|\*)?((?:[.#][\w-]+|\[[^\]]*\])*)$", re.IGNORECASE)
_PART = re.compile(r"([.#])([\w-]+)|\[\s*([\w-]+)\s*(?:[~|^$*]?=\s*[\"']?([^\"'\]]*)[\"']?)?\s*\]")
_COMBINATOR = re.compile(r"\s*[>+~]\s*|\s+")
_NUMBER = re.compile(r"^(-?\d*\.?\d+)\s*([a-z%]*)$")
_HEX = re.compile(r"^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$")
_RGB = re.compile(r"^rgba?\(\s*([\d.]+)(%?)[\s,]+([\d.]+)%?[\s,]+([\d.]+)%?\s*(?:[,/]\s*([\d.]+)(%?))?")
_COLOUR_NAMES = {
    "white": (255, 255, 255), "snow": (255, 250, 250), "ivory": (255, 255, 240), "whitesmoke": (245, 245, 245),
    "ghostwhite": (248, 248, 255), "floralwhite": (255, 250, 240), "black": (0, 0, 0), "gray": (128, 128, 128),
    "grey": (128, 128, 128), "silver": (192, 192, 192), "red": (255, 0, 0), "blue": (0, 0, 255),
    "navy": (0, 0, 128), "green": (0, 128, 0), "yellow": (255, 255, 0), "orange": (255, 165, 0),
}  # fmt: skip
_PAGE = (255, 255, 255)  # what mail clients draw text on unless told otherwise
_MIN_CONTRAST = 1.15     # WCAG contrast ratio under which text does not stand out from its ground
_OFF_SCREEN_PX = -500.0
_TINY = {"px": 1.0, "pt": 1.0, "em": 0.1, "rem": 0.1, "%": 10.0, "ex": 0.2, "ch": 0.2, "vw": 0.1, "vh": 0.1,
         "vmin": 0.1, "vmax": 0.1, "mm": 0.3, "q": 1.0}
_PX_PER = {"px": 1.0, "pt": 4 / 3, "em": 16.0, "rem": 16.0, "ex": 8.0, "ch": 8.0, "%": 10.0, "vw": 10.0,
           "vh": 10.0, "cm": 37.8, "mm": 3.78, "in": 96.0, "pc": 16.0}
_SCALE = re.compile(r"scale[xy]?\(\s*(-?[\d.]+)")
_CLIP_NONE = re.compile(r"rect\(\s*0[a-z]*[\s,]+0[a-z]*[\s,]+0[a-z]*[\s,]+0[a-z]*\s*\)|inset\(\s*(?:50|100)%|circle\(\s*0")
_MEDIA_ANY_SCREEN = re.compile(r"\(\s*min-width\s*:\s*[01](?:px)?\s*\)|\(\s*max-width\s*:\s*\d{4,}px\s*\)")
_MEDIA_FEATURE = re.compile(r"\(")
_CSS_TOKEN = re.compile(r"[{};]")
_MAX_DEPTH = 8  # of the quote markers and list indents drawn on each line: bounds the output


MAX_TAGS = 20_000  # a long newsletter has a few thousand; 200,000 unclosed <div> took 7 s to parse
_TAG = re.compile(r"<[^<>]{0,2000}>")


def too_many_tags(html: str) -> int | None:
    """The number of tags (an upper bound, counted cheaply) when there are too many to render."""
    count = html.count("<")
    return count if count > MAX_TAGS else None


def stripped_text(html: str) -> str:
    """The text of HTML without a parser, in linear time: for HTML too large to render. Nothing
    tells what was hidden, so the caller must not show it as the customer's visible words."""
    return " ".join(entities.unescape(_TAG.sub(" ", html)).split())


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
        self.hidden_selectors: list[_Selector] = []  # grows with each <style> met
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
        # (node, its ink, leaving): a tag is pushed again to be left after its children.
        stack: list[tuple[PageElement, _Ink, bool]] = [
            (child, _Ink(None, _PAGE), False) for child in reversed(root.contents)
        ]
        while stack:
            node, ink, leaving = stack.pop()
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
                self.hidden_selectors += _hidden_selectors(tag.get_text())
            if tag.name in _NOT_RENDERED:
                continue
            hidden, inner = self.look(tag, ink)
            if hidden:
                self.keep_hidden(tag)
                continue
            self.enter(tag)
            stack.append((tag, ink, True))
            stack.extend((child, inner, False) for child in reversed(tag.contents))
        self.flush()

    def look(self, tag: Tag, ink: _Ink) -> tuple[bool, _Ink]:
        """(whether the tag is hidden, the colours its content is drawn in)."""
        if tag.name == "template" or tag.has_attr("hidden"):
            return True, ink
        if self.hidden_selectors and any(selector.matches(tag) for selector in self.hidden_selectors):
            return True, ink
        style = tag.get("style")
        css = _declarations(style) if isinstance(style, str) else {}
        bgcolor = tag.get("bgcolor")
        if isinstance(bgcolor, str):
            css.setdefault("background-color", bgcolor.strip().lower())
        color = tag.get("color") if tag.name == "font" else None
        if isinstance(color, str):
            css.setdefault("color", color.strip().lower())
        if not css:
            return False, ink
        inner = _Ink.of(css, ink)
        return _hides(css) or inner.invisible(), inner

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


@dataclass(frozen=True)
class _Ink:
    """The text colour (None: the reader's default, dark) and the background it is drawn on
    (None: unknown, an image; nothing is judged on it). Colours are (r, g, b, alpha)."""

    fg: tuple[float, float, float, float] | None
    bg: tuple[float, float, float] | None

    @staticmethod
    def of(css: dict[str, str], outer: _Ink) -> _Ink:
        fg = _colour(css["color"]) if "color" in css else outer.fg
        bg = outer.bg
        for key in ("background-color", "background"):
            value = css.get(key)
            if not value:
                continue
            if "url(" in value or "gradient(" in value:
                bg = None
                break
            found = next((c for c in map(_colour, value.split()) if c is not None), None)
            if found is not None and found[3] > 0.5:
                bg = found[:3] if bg is None or found[3] >= 1 else _blend(found, bg)
                break
        return _Ink(fg, bg)

    def invisible(self) -> bool:
        if self.fg is None:
            return False
        if self.fg[3] < 0.1:
            return True
        return self.bg is not None and _contrast(_blend(self.fg, self.bg), self.bg) < _MIN_CONTRAST


def _blend(colour: tuple[float, float, float, float], ground: tuple[float, float, float]) -> tuple[float, float, float]:
    a = colour[3]
    return (colour[0] * a + ground[0] * (1 - a), colour[1] * a + ground[1] * (1 - a), colour[2] * a + ground[2] * (1 - a))


def _contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    def luminance(rgb: tuple[float, float, float]) -> float:
        def channel(c: float) -> float:
            c /= 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        r, g, bl = map(channel, rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * bl

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _colour(value: str) -> tuple[float, float, float, float] | None:
    """A CSS colour as (r, g, b, alpha); None when it is not one we read (then nothing is judged)."""
    value = value.strip()
    if value == "transparent":
        return (0, 0, 0, 0)
    if value in _COLOUR_NAMES:
        return (*_COLOUR_NAMES[value], 1.0)
    if match := _HEX.match(value):
        digits = match[1] if len(match[1]) > 4 else "".join(c * 2 for c in match[1])
        channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
        return (channels[0], channels[1], channels[2], channels[3] / 255 if len(channels) == 4 else 1.0)
    if match := _RGB.match(value):
        scale = 2.55 if match[2] else 1.0
        rgb = [min(float(match[i]) * scale, 255.0) for i in (1, 3, 4)]
        alpha = 1.0 if match[5] is None else float(match[5]) / (100 if match[6] else 1)
        return (rgb[0], rgb[1], rgb[2], alpha)
    return None


def _declarations(style: str) -> dict[str, str]:
    return {
        name: value.replace("!important", "").strip()
        for name, value in _DECLARATION.findall(_CSS_COMMENT.sub("", style.lower()))
    }


def _hides(css: dict[str, str]) -> bool:
    """Declarations that keep text from being seen: not displayed, transparent, tiny, clipped
    away, scaled to nothing, or pushed off the screen."""
    if css.get("display") == "none" or css.get("visibility") in ("hidden", "collapse"):
        return True
    if css.get("mso-hide") == "all" or _at_most(css.get("opacity"), 0.05):
        return True
    font_size = _length(css.get("font-size"))
    if font_size is not None and (font_size[0] <= 0 or font_size[0] <= _TINY.get(font_size[1], 0.0)):
        return True
    clipped = css.get("overflow") == "hidden" or "clip" in css or "clip-path" in css
    if clipped and any(_px(css.get(size), 1.0) for size in ("height", "max-height", "width", "max-width")):
        return True
    if _CLIP_NONE.search(css.get("clip", "") + " " + css.get("clip-path", "")):
        return True
    scale = _SCALE.search(css.get("transform", ""))
    if scale and abs(float(scale[1])) < 0.05:
        return True
    if _px(css.get("text-indent"), _OFF_SCREEN_PX) or any(
        _px(css.get(f"margin-{side}"), _OFF_SCREEN_PX) for side in ("left", "top")
    ):
        return True
    return css.get("position") in ("absolute", "fixed", "relative") and any(
        _px(css.get(side), _OFF_SCREEN_PX) for side in ("left", "top", "right", "bottom")
    )


def _length(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    match = _NUMBER.match(value.strip())
    return (float(match[1]), match[2]) if match else None


def _px(value: str | None, limit: float) -> bool:
    """A CSS length at most `limit` pixels (units converted roughly; a size of zero whatever its
    unit, but an offset of zero is no offset)."""
    length = _length(value)
    if length is None:
        return False
    number, unit = length
    return (number == 0 and limit >= 0) or number * _PX_PER.get(unit or "px", 1.0) <= limit


def _at_most(value: str | None, limit: float) -> bool:
    length = _length(value)
    return length is not None and length[0] <= limit


def _same_target(label: str, href: str) -> bool:
    def bare(value: str) -> str:
        value = value.lower().strip().rstrip("/")
        for scheme in ("mailto:", "tel:", "https://", "http://", "www."):
            value = value.removeprefix(scheme)
        return value

    return bare(label) == bare(href)


@dataclass(frozen=True)
class _Selector:
    """The last compound of a CSS selector (`p.note`, `span[data-x]`, `#id`, `*`): ancestors are not
    checked, so a rule hides at least what it hides in a browser (text it may not hide is only
    kept apart, never lost)."""

    tag: str | None
    classes: frozenset[str]
    ident: str | None
    attributes: tuple[tuple[str, str | None], ...]

    @staticmethod
    def parse(text: str) -> _Selector | None:
        last = _COMBINATOR.split(text.strip())[-1]
        match = _COMPOUND.match(last)
        if not last or ":" in last or match is None:
            return None  # pseudo-classes (:hover ...) apply only sometimes
        tag = match[1].lower() if match[1] and match[1] != "*" else None
        classes, ident, attributes = set(), None, []
        for kind, name, attribute, value in _PART.findall(match[2] or ""):
            if kind == ".":
                classes.add(name.lower())
            elif kind == "#":
                ident = name.lower()
            else:
                attributes.append((attribute.lower(), value or None))
        return _Selector(tag, frozenset(classes), ident, tuple(attributes))

    def matches(self, tag: Tag) -> bool:
        if self.tag is not None and tag.name != self.tag:
            return False
        if self.classes and not self.classes <= {str(c).lower() for c in tag.get("class") or []}:
            return False
        element_id = tag.get("id")
        if self.ident is not None and not (isinstance(element_id, str) and element_id.lower() == self.ident):
            return False
        for name, value in self.attributes:
            have = tag.get(name)
            if have is None or (value is not None and value not in str(have)):
                return False
        return True


def _hidden_selectors(css: str) -> list[_Selector]:
    """Selectors whose rules hide, the usual way to hide a preheader (and an attacker's text).

    Rules inside `@media` blocks count when the query holds on every screen (`screen`, `all`, no
    size condition): rules for some screen sizes only hide one layout of content that is repeated
    for other screens, and counting them would drop visible text. Print-only rules do not count.
    """
    hidden: list[_Selector] = []
    for selectors, body in _css_rules(_CSS_COMMENT.sub("", css)):
        if not _hides(_declarations(body)):
            continue
        hidden.extend(s for s in map(_Selector.parse, selectors.split(",")) if s is not None)
    return hidden


def _css_rules(css: str) -> list[tuple[str, str]]:
    """(selectors, declarations) of every rule that applies on every screen, without recursion."""
    rules: list[tuple[str, str]] = []
    depth, skip_from, pos = 0, 0, 0   # skip_from: depth of the at-rule block being skipped (0: none)
    while (token := _CSS_TOKEN.search(css, pos)) is not None:
        prelude, pos = css[pos : token.start()].strip(), token.end()
        if token.group() == ";":       # an at-statement (@import ...;) or a stray declaration
            continue
        if token.group() == "}":
            if depth and skip_from == depth:
                skip_from = 0
            depth = max(depth - 1, 0)
            continue
        if prelude.startswith("@"):
            depth += 1
            if not skip_from and not _on_every_screen(prelude):
                skip_from = depth
            continue
        end = css.find("}", pos)
        end = len(css) if end == -1 else end
        if not skip_from:
            rules.append((prelude, css[pos:end]))
        pos = end + 1
    return rules


def _on_every_screen(prelude: str) -> bool:
    """Whether an at-rule's block applies on every screen: `@media screen`, `@media all`, a size
    condition every screen meets, `@supports`; not `print`, size conditions, `@font-face` ..."""
    lowered = prelude.lower()
    if lowered.startswith("@supports") or lowered.startswith("@layer"):
        return True
    if not lowered.startswith("@media"):
        return False
    query = lowered.removeprefix("@media")
    if "print" in query or "speech" in query or " not " in f" {query} ":
        return False
    conditions = len(_MEDIA_FEATURE.findall(query))
    return conditions == len(_MEDIA_ANY_SCREEN.findall(query))
