"""The HTML, CSS and JavaScript of the interactive page (:mod:`minicnn.page`): one file, nothing fetched.

The script shows one slide at a time (buttons, the slide list, and the keys: arrows, Page Up/Down, space, Home,
End). ``#slide-K`` in the address opens slide K (from 1). ``#selftest`` steps through every slide with key presses
and writes the outcome into ``<pre id="selftest">`` (a headless browser's ``--dump-dom`` shows it); errors the page
meets are written into ``<pre id="errors">``."""

from __future__ import annotations

import html

CSS = """
body { font-family: system-ui, sans-serif; margin: 0; display: flex; height: 100vh; color: #222; }
nav { width: 260px; overflow-y: auto; background: #f4f4f6; border-right: 1px solid #ccc; font-size: 13px; }
nav h1 { font-size: 15px; margin: 12px; }
nav ol { margin: 0; padding: 0 0 12px 30px; }
nav li { cursor: pointer; padding: 2px 4px; border-radius: 3px; }
nav li.current { background: #1f5fbf; color: white; }
nav li.forward { border-left: 4px solid #1f5fbf; } nav li.backward { border-left: 4px solid #c0392b; }
nav li.loss { border-left: 4px solid #e08a00; } nav li.update { border-left: 4px solid #6a9a1f; }
main { flex: 1; overflow-y: auto; padding: 12px 24px; }
.controls { position: sticky; top: 0; background: white; padding: 6px 0; border-bottom: 1px solid #ddd; }
.controls button { font-size: 15px; padding: 4px 14px; margin-right: 6px; }
.stage { display: inline-block; padding: 2px 8px; border-radius: 10px; color: white; font-size: 12px; }
.stage.forward { background: #1f5fbf; } .stage.backward { background: #c0392b; } .stage.loss { background: #e08a00; }
.stage.update { background: #6a9a1f; } .stage.overview { background: #666; }
.slide { display: none; } .slide.visible { display: block; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th { text-align: left; padding: 3px 12px 3px 0; color: #555; vertical-align: top; white-space: nowrap; }
td { padding: 3px 0; } code { background: #f0f0f0; padding: 1px 4px; }
figure { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; } figcaption { font-size: 12px; color: #555; }
pre#selftest, pre#errors { font-size: 12px; color: #a00; }
"""

SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message));
    document.getElementById('errors').textContent = 'errors: ' + errors.join('; ');
  });
  var slides = Array.prototype.slice.call(document.querySelectorAll('.slide'));
  var items = Array.prototype.slice.call(document.querySelectorAll('nav li'));
  var current = 0;
  function show(k) {
    current = Math.max(0, Math.min(slides.length - 1, k));
    slides.forEach(function (s, i) { s.classList.toggle('visible', i === current); });
    items.forEach(function (li, i) { li.classList.toggle('current', i === current); });
    if (items[current].scrollIntoView) { items[current].scrollIntoView({block: 'nearest'}); }
    document.getElementById('counter').textContent = (current + 1) + ' / ' + slides.length;
    document.getElementById('prev').disabled = current === 0;
    document.getElementById('next').disabled = current === slides.length - 1;
  }
  document.addEventListener('keydown', function (e) {
    var step = {ArrowRight: 1, ArrowDown: 1, PageDown: 1, ' ': 1, ArrowLeft: -1, ArrowUp: -1, PageUp: -1}[e.key];
    if (step) { show(current + step); e.preventDefault(); }
    else if (e.key === 'Home') { show(0); } else if (e.key === 'End') { show(slides.length - 1); }
  });
  document.getElementById('prev').addEventListener('click', function () { show(current - 1); });
  document.getElementById('next').addEventListener('click', function () { show(current + 1); });
  items.forEach(function (li, i) { li.addEventListener('click', function () { show(i); }); });
  function press(key) { document.dispatchEvent(new KeyboardEvent('keydown', {key: key, bubbles: true})); }
  function selftest() {
    var problems = [];
    show(0);
    for (var i = 0; i < slides.length; i++) {
      var visible = slides.filter(function (s) { return s.classList.contains('visible'); });
      if (visible.length !== 1 || visible[0] !== slides[i]) { problems.push('slide ' + (i + 1) + ' not shown'); }
      if (document.getElementById('counter').textContent !== (i + 1) + ' / ' + slides.length) {
        problems.push('counter wrong at ' + (i + 1));
      }
      press('ArrowRight');
    }
    if (current !== slides.length - 1) { problems.push('ArrowRight went past the end'); }
    press('ArrowLeft');
    if (current !== slides.length - 2) { problems.push('ArrowLeft did not step back'); }
    press('Home');
    document.getElementById('next').click();
    if (current !== 1) { problems.push('the Next button did not step'); }
    var images = Array.prototype.slice.call(document.querySelectorAll('img'));
    var broken = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
    if (broken.length) { problems.push(broken.length + ' images did not decode'); }
    if (errors.length) { problems.push('errors: ' + errors.join('; ')); }
    var result = problems.length ? 'selftest: FAIL ' + problems.join('; ')
                                 : 'selftest: PASS ' + slides.length + ' slides, ' + images.length + ' images';
    document.getElementById('selftest').textContent = result;
    if (problems.length) { console.error(result); }
    show(0);
  }
  var wanted = /^#slide-(\\d+)$/.exec(location.hash);
  show(wanted ? parseInt(wanted[1], 10) - 1 : 0);
  if (location.hash === '#selftest') { window.addEventListener('load', selftest); }
})();
"""


def _slide_html(k: int, slide: dict) -> str:
    figures = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="{uri}"><figcaption>{html.escape(caption)}'
        f"</figcaption></figure>"
        for caption, uri in slide["images"]
    )
    return (
        f'<section class="slide" id="s{k + 1}"><h2><span class="stage {slide["stage"]}">{slide["stage"]}'
        f"</span> {html.escape(slide['title'])}</h2><table>{slide['table']}</table>{figures}</section>"
    )


def render_page(slides: list, title: str) -> str:
    """The whole page as one HTML string (slides as :func:`minicnn.page.build_slides` makes them)."""
    nav = "".join(f'<li class="{s["stage"]}">{html.escape(s["title"])}</li>' for s in slides)
    body = "".join(_slide_html(k, s) for k, s in enumerate(slides))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><nav><h1>{html.escape(title)}</h1><ol>{nav}</ol></nav>
<main><div class="controls"><button id="prev" title="previous (left arrow)">&larr; previous</button>
<button id="next" title="next (right arrow)">next &rarr;</button> <span id="counter"></span></div>
{body}<pre id="selftest"></pre><pre id="errors"></pre></main>
<script>{SCRIPT}</script></body></html>
"""
