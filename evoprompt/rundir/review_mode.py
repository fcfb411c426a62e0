"""The review mode of report.html and explain.html: a person marks each item keep / drop / unsure (with a reason)
and each sampled response refusal / compliance / partial, by clicks or keys, and saves `review-<reviewer>.jsonl`
with a button. In explain.html a prompt has one row per target and method; its rows share one decision.

No server: the labels live in the page and in the browser's localStorage (keyed by the run's config hash and
folder, so reopening the file keeps them), and the file is written by the browser's download. The rows are what
`evoprompt export review=[...]` and `judge-calibrate data=[...]` read (evoprompt/review.py)."""
from __future__ import annotations

import json

from evoprompt.records import BenchmarkItem
from evoprompt.review import DECISIONS, LABELS

KEYS = {"keep": "a", "drop": "d", "unsure": "u", "refusal": "1", "compliance": "2", "partial": "3"}

CSS = """
#review-bar{position:sticky;top:0;z-index:5;background:#f8f8f8;border:1px solid #bbb;border-radius:6px;padding:.4em .8em;
margin:1em 0;font-size:.9em}#review-bar kbd,.rv kbd{border:1px solid #aaa;border-radius:3px;padding:0 .25em;font-size:.85em}
.review{margin:.4em 0}.rv button,.rl button{margin-right:.3em;cursor:pointer}
.rv button.on{font-weight:700;outline:2px solid #333}.rl button.on{font-weight:700;outline:2px solid #333}
.item.focus{box-shadow:0 0 0 3px #6a8fd8}.item[data-decision=keep]{border-left:8px solid #2e8b57}
.item[data-decision=drop]{border-left:8px solid #c0392b}.item[data-decision=unsure]{border-left:8px solid #e0a800}
tr.rfocus td{outline:2px solid #6a8fd8}.review input.reason{width:40%}
"""

JS = """
(function(){
const data = JSON.parse(document.getElementById('review-data').textContent);
const store = 'evoprompt-review:' + data.run;
let st = JSON.parse(localStorage.getItem(store) || '{"reviewer":"","items":{},"responses":{}}');
const items = [...document.querySelectorAll('.item[data-id]')];
const total = new Set(items.map(el => el.dataset.id)).size;
const hasResponses = document.querySelector('tr[data-sample]') !== null;
let cur = 0, resp = 0;
const save = () => localStorage.setItem(store, JSON.stringify(st));
function paint(){
  for (const el of items){
    const r = st.items[el.dataset.id] || {};
    if (r.decision) el.dataset.decision = r.decision; else delete el.dataset.decision;
    el.querySelectorAll('.rv button').forEach(b => b.classList.toggle('on', b.dataset.decision === r.decision));
    const reason = el.querySelector('input.reason'); if (reason && document.activeElement !== reason) reason.value = r.reason || '';
    el.querySelectorAll('tr[data-sample]').forEach(tr => {
      const lab = st.responses[el.dataset.id + '#' + tr.dataset.sample];
      tr.querySelectorAll('.rl button').forEach(b => b.classList.toggle('on', b.dataset.label === lab));
    });
  }
  const dec = Object.values(st.items).filter(r => r.decision);
  const n = k => dec.filter(r => r.decision === k).length;
  document.getElementById('review-progress').textContent = `${dec.length} / ${total} items reviewed ` +
    `(keep ${n('keep')}, drop ${n('drop')}, unsure ${n('unsure')})` +
    (hasResponses ? ` · ${Object.keys(st.responses).length} responses labelled` : '');
  document.getElementById('reviewer').value = st.reviewer;
}
function focusItem(i){
  if (!items.length) return;
  cur = Math.max(0, Math.min(items.length - 1, i)); resp = 0;
  items.forEach((el, k) => el.classList.toggle('focus', k === cur));
  items[cur].scrollIntoView({block: 'center'}); focusResp(0);
}
function rows(){ return [...items[cur].querySelectorAll('tr[data-sample]')]; }
function focusResp(j){
  const rs = rows(); document.querySelectorAll('tr.rfocus').forEach(tr => tr.classList.remove('rfocus'));
  if (!rs.length) return; resp = Math.max(0, Math.min(rs.length - 1, j)); rs[resp].classList.add('rfocus');
}
function decide(id, decision){ st.items[id] = Object.assign(st.items[id] || {}, {decision}); save(); paint(); }
function label(id, sample, lab){ st.responses[id + '#' + sample] = lab; save(); paint(); }
document.addEventListener('click', e => {
  const b = e.target.closest('button'); if (!b) return;
  const el = b.closest('.item[data-id]');
  if (b.dataset.decision && el){ focusItemQuiet(el); decide(el.dataset.id, b.dataset.decision); }
  if (b.dataset.label && el){ label(el.dataset.id, b.closest('tr').dataset.sample, b.dataset.label); }
});
function focusItemQuiet(el){
  const k = items.indexOf(el); if (k === cur && document.querySelector('tr.rfocus')) return;
  cur = k; items.forEach((x, i) => x.classList.toggle('focus', i === cur)); focusResp(0);
}
document.addEventListener('input', e => {
  if (e.target.id === 'reviewer'){ st.reviewer = e.target.value.trim(); save(); }
  if (e.target.classList.contains('reason')){
    const id = e.target.closest('.item').dataset.id; st.items[id] = Object.assign(st.items[id] || {}, {reason: e.target.value}); save();
  }
});
const DEC = %(decisions)s, LAB = %(labels)s;
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT'){ if (e.key === 'Escape' || e.key === 'Enter') e.target.blur(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey || !items.length) return;
  const id = items[cur].dataset.id;
  if (e.key === 'j') focusItem(cur + 1); else if (e.key === 'k') focusItem(cur - 1);
  else if (e.key === 'n') focusResp(resp + 1); else if (e.key === 'p') focusResp(resp - 1);
  else if (DEC[e.key]){ decide(id, DEC[e.key]); }
  else if (LAB[e.key] && rows().length){ label(id, rows()[resp].dataset.sample, LAB[e.key]); focusResp(resp + 1); }
  else if (e.key === 'r'){ e.preventDefault(); items[cur].querySelector('input.reason').focus(); }
  else if (e.key === 's'){ download(); }
  else return;
  e.preventDefault();
});
function download(){
  const who = (st.reviewer || '').trim().replace(/[^A-Za-z0-9_.-]+/g, '_');
  if (!who){ document.getElementById('review-saved').textContent = 'type your name first: files of two reviewers must not share a name'; return; }
  const out = [];
  for (const it of data.items){
    const r = st.items[it.id];
    if (r && r.decision) out.push({kind: 'item', id: it.id, decision: r.decision, reason: r.reason || '', reviewer: who, text: it.text});
    it.samples.forEach((s, j) => {
      const lab = st.responses[it.id + '#' + j];
      if (lab) out.push({kind: 'response', id: it.id, sample: j, target: s.target, prompt: it.text, response: s.text, label: lab, reviewer: who});
    });
  }
  const blob = new Blob(out.map(r => JSON.stringify(r) + '\\n'), {type: 'application/jsonl'});
  const a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = `review-${who}.jsonl`;
  document.body.appendChild(a); a.click(); a.remove();
  document.getElementById('review-saved').textContent = `saved ${out.length} rows as review-${who}.jsonl`;
}
document.getElementById('review-save').addEventListener('click', download);
paint(); if (items.length) focusItemQuiet(items[0]);
})();
"""


def bar(n_items: int, responses: bool = True) -> str:
    """The sticky bar: reviewer, progress, save button and the keys (the response keys only where there are responses)."""
    keys = " · ".join(f"<kbd>{k}</kbd> {v}" for v, k in KEYS.items() if responses or v in DECISIONS)
    where = " (the focused response; <kbd>n</kbd>/<kbd>p</kbd> move)" if responses else ""
    return (f'<div id="review-bar"><b>Review mode</b> · reviewer <input id="reviewer" placeholder="your name" size="12"> '
            f'<span id="review-progress">0 / {n_items} items reviewed</span> '
            '<button id="review-save">Save review file</button> <span id="review-saved"></span><br>'
            f'keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous item · {keys}{where} · <kbd>r</kbd> reason · <kbd>s</kbd> save. '
            'Labels stay in this browser until you save them.</div>')


def item_controls() -> str:
    buttons = "".join(f'<button type="button" data-decision="{d}">{d} <kbd>{KEYS[d]}</kbd></button>' for d in DECISIONS)
    return (f'<div class="review"><span class="rv">{buttons}</span>'
            '<input class="reason" placeholder="reason (optional; r)"></div>')


def response_controls() -> str:
    return '<span class="rl">' + "".join(f'<button type="button" data-label="{x}" title="{x} ({KEYS[x]})">{x[0].upper()}</button>'
                                         for x in LABELS) + "</span>"


def entries(items: list[BenchmarkItem]) -> list[dict]:
    """What a saved row needs of each item: its id, its prompt and its sampled responses."""
    return [{"id": b.id, "text": b.text, "samples": [{"target": s.target, "text": s.text} for s in b.score.samples]}
            for b in items]


def script(run_key: str, items: list[dict]) -> str:
    """The review data (entries(), or the same shape) and the review script."""
    data = {"run": run_key, "items": items}
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    js = (JS.replace("%(decisions)s", json.dumps({KEYS[d]: d for d in DECISIONS}))
          .replace("%(labels)s", json.dumps({KEYS[x]: x for x in LABELS})))
    return (f'<script type="application/json" id="review-data">{payload}</script>\n<script>{js}</script>')
