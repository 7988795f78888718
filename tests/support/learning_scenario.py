"""Show that the loop learns: questions the sample knowledge base cannot answer arrive and are
held; reps answer them; the answers become eval cases and knowledge suggestions; a lead accepts
the suggestions (as how-to articles) and the cases; paraphrases of the questions arrive. Before,
about none is auto-resolved; after, most are, each graded against the rep's final. Then
`eval run` on the new cases. Used by `bench/learning.py` (40 questions) and the tests (a few).

Everything is real: the offline model on the knowledge base, the shipped policy, the review
verbs a rep uses, the learning step the clock runs, the suggestions a lead accepts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import select

from mailagent.config import Settings
from mailagent.evals import cases, learning, runs, sets, suggestions
from mailagent.evals.graders import RequiredFacts, Sample
from mailagent.store import db
from mailagent.store.models import Draft, KnowledgeSuggestion

from .learning import answer, ask


@dataclass(frozen=True)
class Topic:
    subject: str
    body: str
    final: str                      # what the rep answers (the body of the reply)
    again_subject: str              # the paraphrase that arrives later
    again_body: str


TOPICS: tuple[Topic, ...] = (
    Topic("Dark mode?", "Is there a dark mode in the Nimbus app? I work late at night.",
          "Yes: Nimbus Notes has a dark theme. Open Settings → Appearance → Theme and choose Dark. "
          "Pick Automatic to follow your system setting.",
          "Does Nimbus have a dark mode", "Can I switch the app to dark mode? Bright screens hurt my eyes."),
    Topic("Keyboard shortcuts list", "Where do I find a list of all keyboard shortcuts?",
          "Press Ctrl + / (Cmd + / on a Mac) anywhere in the app to open the keyboard shortcuts overview. "
          "You can also find it under Help → Keyboard shortcuts.",
          "List of keyboard shortcuts", "I want to learn the keyboard shortcuts. Is there an overview somewhere?"),
    Topic("Markdown support", "Can I write my notes in Markdown?",
          "Yes, the editor understands Markdown as you type: # for headings, ** for bold and - for lists. "
          "Pasted Markdown is converted automatically.",
          "Markdown in notes", "Does the editor support Markdown formatting when I type?"),
    Topic("Pin a note to the top", "How can I pin a note so it stays at the top of the notebook?",
          "Right-click the note in the list and choose Pin to top. Pinned notes show a pin icon and stay above "
          "all other notes of the notebook.",
          "Pin note on top", "Is it possible to pin a note at the top of my notebook list?"),
    Topic("Note templates", "Can I create templates for my meeting notes?",
          "Yes: open a note, choose ⋯ → Save as template, and give it a name. New notes can then start from it "
          "via New note → From template.",
          "Templates for notes", "I write the same meeting notes every week, can I make a template?"),
    Topic("Voice memos", "Can I record voice memos inside a note?",
          "Yes, on the mobile apps: tap the microphone button in the note toolbar. Recordings are stored as "
          "audio attachments of up to 60 minutes each.",
          "Record voice memos", "Is there a way to record a voice memo in a note on my phone?"),
    Topic("Stylus handwriting", "Does Nimbus support handwriting with a stylus on the iPad?",
          "Yes: on iPad and Android tablets, insert a Sketch block with + → Sketch and write with your stylus. "
          "Handwriting is searchable after the next sync.",
          "Handwriting with stylus", "Can I take handwritten notes with my stylus on a tablet?"),
    Topic("Web clipper extension", "Is there a browser extension to clip web pages?",
          "Yes, the Nimbus Web Clipper is available for Chrome, Firefox and Edge. It saves the page, a selection "
          "or a screenshot into the notebook you choose.",
          "Web clipper for my browser", "Do you have a web clipper extension for saving pages from my browser?"),
    Topic("Reminders on notes", "Can I set a reminder on a note?",
          "Yes: open the note, click the bell icon and pick a date and time. You get a notification on every "
          "device where you are signed in.",
          "Reminder for a note", "I would like a note to remind me on a certain day. Are reminders possible?"),
    Topic("Tag colors", "Can I give my tags different colors?",
          "Yes: in the sidebar, right-click a tag and choose Color. There are 12 colors, and notes show "
          "their tags in those colors.",
          "Colors for tags", "Is it possible to change the color of a tag?"),
    Topic("Spell check languages", "How do I change the spell check language?",
          "Open Settings → Editor → Spell check and add the languages you write in. Nimbus checks up to 3 "
          "languages at the same time.",
          "Spell check in another language", "My spell check marks German words as wrong, can I change the language?"),
    Topic("Font size", "How can I make the font size bigger in the editor?",
          "Open Settings → Appearance → Font size and choose a size from 12 to 24 points. Ctrl + plus also "
          "zooms the editor for the current session.",
          "Bigger font size", "The font size in the editor is too small for me. Can I increase it?"),
    Topic("Print a note", "How do I print a single note?",
          "Open the note and choose ⋯ → Print, or press Ctrl + P. Images and tables are printed, comments "
          "are left out.",
          "Printing a note", "I need to print one note on paper, how does that work?"),
    Topic("Calendar integration", "Can Nimbus connect to my Google Calendar?",
          "Yes: open Settings → Integrations → Calendar and connect Google Calendar or Outlook. Meeting notes "
          "then start with the event's title, time and attendees.",
          "Google Calendar connection", "Is there a way to link my Google Calendar with the notes?"),
    Topic("Slack integration", "Is there a Slack integration?",
          "Yes: an admin installs it under Settings → Integrations → Slack. You can then share a note to a "
          "channel and save Slack messages as notes with the Save to Nimbus action.",
          "Slack integration available", "Does Nimbus integrate with Slack so I can share notes to a channel?"),
    Topic("Word count", "Where can I see the word count of a note?",
          "Click ⋯ → Note info: it shows the word count, character count and reading time of the note.",
          "Word count of my note", "I need to know how many words my note has. Where is the word count?"),
    Topic("Tables in notes", "Can I add a table to a note?",
          "Yes: type /table or choose + → Table. Tables can have up to 50 columns, and you can sort them by "
          "any column.",
          "Insert a table", "How do I insert a table into one of my notes?"),
    Topic("Code blocks", "Does the editor highlight code in code blocks?",
          "Yes: type ``` or choose + → Code block, then pick the language. Syntax highlighting covers more than "
          "60 languages.",
          "Syntax highlighting for code blocks", "I paste code into my notes. Are code blocks highlighted?"),
    Topic("Linking notes", "Can I link one note to another?",
          "Yes: type [[ and the title of the other note. Each note shows its backlinks at the bottom, so you "
          "see which notes link to it.",
          "Links between notes", "Is it possible to link notes to each other, like a wiki?"),
    Topic("Focus mode", "Is there a distraction-free focus mode for writing?",
          "Yes: press F11 or choose View → Focus mode. It hides the sidebar and toolbars until you press Esc.",
          "Distraction-free focus mode", "When writing I want to hide everything else. Do you have a focus mode?"),
    Topic("Split view", "Can I open two notes side by side?",
          "Yes: hold Ctrl (Cmd on a Mac) and click a second note, or drag it to the right edge. Split view shows "
          "up to 3 notes next to each other.",
          "Two notes side by side", "How do I see two notes side by side at the same time?"),
    Topic("Daily notes journal", "Does Nimbus have daily notes for journaling?",
          "Yes: turn on Settings → Features → Daily notes. A new note named after today's date is created each "
          "morning in your Journal notebook.",
          "Daily notes for a journal", "I want to keep a journal. Can the app create daily notes automatically?"),
    Topic("Kanban board", "Can I organize tasks on a kanban board?",
          "Yes: create a board with + → Board. Each column is a status, and cards are notes you can drag "
          "between columns.",
          "Kanban board for tasks", "Is there a kanban board view to move my tasks between columns?"),
    Topic("Publish a note to the web", "Can I publish a note as a public web page?",
          "Yes: choose Share → Publish to web. The page updates when you edit the note, and you can unpublish "
          "it at any time from the same menu.",
          "Publish note as web page", "I'd like to make one note public on the web. Is publishing possible?"),
    Topic("Math equations", "Can I write math equations in a note?",
          "Yes: type $$ to insert a LaTeX equation block, or wrap inline math in single $ signs. Equations are "
          "rendered as you type.",
          "Math equations in notes", "Does the editor support LaTeX for math equations?"),
    Topic("Diagrams", "Can I draw diagrams like flowcharts?",
          "Yes: insert a Mermaid block with + → Diagram. Flowcharts, sequence diagrams and Gantt charts are "
          "rendered from the text you write.",
          "Flowchart diagrams", "Is there a way to create flowchart diagrams inside a note?"),
    Topic("Text in images", "Can I search for text inside images?",
          "Yes: Nimbus reads the text in images you add (OCR) within a few minutes, and search finds it. It "
          "works for photos of documents and screenshots.",
          "Search text in images", "If I add a photo of a document, will search find the text inside the image?"),
    Topic("Annotate PDFs", "Can I annotate PDF files in Nimbus?",
          "Yes: open an attached PDF and use the highlighter or pen in the toolbar. Annotations are saved in the "
          "PDF and synced to all devices.",
          "PDF annotation", "Is it possible to highlight and annotate an attached PDF?"),
    Topic("Checklists", "How do I make a checklist in a note?",
          "Type [] and a space, or choose + → Checklist. Checked items can be moved to the bottom "
          "automatically under ⋯ → Checklist options.",
          "Create a checklist", "I need a to-do checklist in my note, how do I add one?"),
    Topic("Recurring tasks", "Can tasks repeat every week?",
          "Yes: open the task, click the date, and choose Repeat. Tasks can repeat daily, weekly, monthly or on "
          "chosen weekdays.",
          "Weekly recurring tasks", "Is it possible to have a task that repeats every week?"),
    Topic("Zapier integration", "Do you have a Zapier integration?",
          "Yes: search for Nimbus Notes in Zapier. Triggers fire on new or updated notes, and actions create "
          "notes or append text to them.",
          "Zapier connection", "Can I connect Nimbus to Zapier to automate things?"),
    Topic("Linux desktop app", "Is there a desktop app for Linux?",
          "Yes: the Linux app is available as AppImage, .deb and Flatpak from nimbusnotes.example/download. It "
          "supports Ubuntu 22.04 and newer.",
          "Linux app", "Do you offer the desktop app for Linux too?"),
    Topic("Right-to-left languages", "Does the editor support Arabic and Hebrew?",
          "Yes: right-to-left text is detected per paragraph. You can also switch a paragraph's direction with "
          "Ctrl + Shift + X.",
          "Arabic and Hebrew support", "Can I write in Arabic or Hebrew in the editor?"),
    Topic("Screen reader", "Does Nimbus work with a screen reader?",
          "Yes: the apps support VoiceOver, NVDA and JAWS. Settings → Accessibility has a screen reader mode "
          "that announces note titles and formatting.",
          "Screen reader support", "I am blind and use NVDA. Does the app work with a screen reader?"),
    Topic("Duplicate a notebook", "How do I duplicate a whole notebook?",
          "Right-click the notebook in the sidebar and choose Duplicate. The copy includes all notes and "
          "attachments, but not the sharing settings.",
          "Copy a notebook", "Can I duplicate a notebook with all its notes?"),
    Topic("Merge notes", "Can I merge two notes into one?",
          "Yes: select the notes in the list with Ctrl-click, then choose ⋯ → Merge. The notes are joined in the "
          "order you selected them.",
          "Merging notes", "I have several small notes, can I merge them into one note?"),
    Topic("Archive a notebook", "Can I archive an old notebook without deleting it?",
          "Yes: right-click the notebook and choose Archive. Archived notebooks are read-only, hidden from the "
          "sidebar and still found by search.",
          "Archive old notebook", "How can I archive a notebook I no longer use, without deleting it?"),
    Topic("Sort order of notes", "How do I change the sort order of my notes?",
          "Click the sort button above the note list and choose title, date created or date updated. Each "
          "notebook keeps its own sort order.",
          "Note sort order", "My notes are sorted oddly. How can I change the sort order?"),
    Topic("Cover images", "Can a note have a cover image?",
          "Yes: hover over the note title and click Add cover. You can upload an image or pick one from the "
          "built-in gallery.",
          "Cover image for a note", "Is it possible to add a cover image at the top of a note?"),
    Topic("Custom fonts", "Can I use my own fonts in notes?",
          "Yes, on the desktop apps: Settings → Appearance → Font lists the fonts installed on your computer. "
          "Other devices show a similar default font.",
          "Own fonts in the editor", "Can I choose a custom font for my notes?"),
)


@dataclass(frozen=True)
class Phase:
    """What happened to a batch of questions."""

    asked: int
    auto_sent: int
    auto_sent_correct: int           # auto-sent, and stating the rep's facts (required_facts passes)
    held: int


@dataclass(frozen=True)
class Figures:
    before: Phase
    after: Phase
    cases: int
    suggestions_accepted: int
    eval_passed: int
    eval_cases: int
    gate_passed: bool
    seconds: float


def _phase(settings: Settings, questions: Sequence[tuple[str, str, str]], finals: Sequence[str]) -> tuple[Phase, list[int]]:
    ids = [ask(settings, subject, body, sender=sender) for subject, body, sender in questions]
    sent = correct = 0
    with db.reading(settings.database.url) as s:
        rows = [s.get(Draft, i) for i in ids]
    for row, final in zip(rows, finals, strict=True):
        assert row is not None
        if row.state == "sent" and row.reviewed_by is None:
            sent += 1
            grade = RequiredFacts().grade(Sample(reply=row.text, reference=final))
            correct += bool(grade and grade.passed)
    return Phase(len(ids), sent, correct, sum(r.state == "held" for r in rows if r)), ids


def reply(topic: Topic) -> str:
    return f"Hi,\n\n{topic.final}\n\nBest regards,\nAna from Nimbus support"


def run(settings: Settings, topics: Sequence[Topic] = TOPICS) -> Figures:
    """The scenario on a desk (`support.learning.desk`) with the shipped policy."""
    started = time.monotonic()
    finals = [reply(t) for t in topics]
    before, held = _phase(settings, [(t.subject, t.body, f"first{n}@customer.example") for n, t in enumerate(topics)],
                          finals)
    for draft_id, final in zip(held, finals, strict=True):
        answer(settings, draft_id, final)                 # a rep answers each held question
    built = learning.build(settings)                       # what the clock runs every half minute
    with db.reading(settings.database.url) as s:
        opened = s.exec(select(KnowledgeSuggestion).where(KnowledgeSuggestion.state == "open")).all()
        new_cases = [c.id or 0 for c in cases.select_cases(s, cases.Filter(states=("new",)))]
    for suggestion in opened:                              # a lead accepts them as how-to articles
        suggestions.accept(settings, suggestion.id or 0, "lead@example", intent="how_to")
    cases.curate(settings.database.url, new_cases, "accepted", "lead@example")
    after, _ = _phase(settings, [(t.again_subject, t.again_body, f"again{n}@customer.example")
                                 for n, t in enumerate(topics)], finals)
    evaluated = runs.run(settings, sets.load(settings, "default"))
    return Figures(before, after, built.cases, len(opened), evaluated.run.passed, evaluated.run.cases,
                   evaluated.verdict.passed, time.monotonic() - started)
