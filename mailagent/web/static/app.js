// Keyboard shortcuts for the review page. The page works without this file: every shortcut
// only moves the focus or presses a button that is already on the page.
(function () {
  "use strict";
  const page = document.body.dataset.page;
  const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  const rows = () => Array.from(document.querySelectorAll("#queue tr.item"));
  let selected = -1;

  function select(i) {
    const all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((row, n) => row.classList.toggle("selected", n === selected));
    all[selected].scrollIntoView({ block: "nearest" });
  }

  function focus(id) {
    const el = document.getElementById(id);
    if (el) { el.focus(); el.scrollIntoView({ block: "center" }); }
  }

  document.querySelectorAll("#queue tr.item").forEach((row) => {
    row.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      window.location.href = row.dataset.href;
    });
  });

  const editText = document.getElementById("edit-text");
  if (editText) {
    editText.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        document.getElementById("edit-form").requestSubmit();
      }
    });
  }

  document.addEventListener("keydown", (event) => {
    const help = document.getElementById("shortcuts");
    if (event.key === "Escape") {
      if (help) help.hidden = true;
      if (typing(document.activeElement)) document.activeElement.blur();
      return;
    }
    if (typing(document.activeElement) || event.ctrlKey || event.metaKey || event.altKey) return;
    const root = document.querySelector("link[rel=stylesheet]").getAttribute("href").replace(/\/static\/app\.css$/, "");
    const key = event.key;
    if (key === "?") { if (help) help.hidden = !help.hidden; return; }
    if (key === "q") { window.location.href = root + "/queue"; return; }
    if (page === "queue") {
      if (key === "j") select(selected + 1);
      else if (key === "k") select(selected - 1);
      else if (key === "Enter" || key === "o") { const r = rows()[Math.max(selected, 0)]; if (r) window.location.href = r.dataset.href; }
      else if (key === "/") { event.preventDefault(); focus("customer-filter"); }
      return;
    }
    if (page === "conversation") {
      if (key === "a") {
        const button = document.getElementById("approve");
        if (button && !button.disabled && window.confirm("Send this draft to the customer as written?")) button.click();
      } else if (key === "e") { event.preventDefault(); focus("edit-text"); }
      else if (key === "r") { event.preventDefault(); focus("reject-reason"); }
      else if (key === "f") { event.preventDefault(); focus("flag-note"); }
      else if (key === "t") { const b = document.getElementById("takeover"); if (b) b.click(); }
    }
  });
})();
