// The review page's player and controls (docs/review.md). Every decision is a JSON POST to do/<what>, relative to
// the page's own URL (which carries the run's token); the server writes it to the episode's edit files.
(() => {
  'use strict';
  const $ = (s) => document.querySelector(s);
  const $$ = (s) => Array.from(document.querySelectorAll(s));
  const player = $('#player');
  const status = $('#status');
  const editor = $('#editor');
  const meant = $('#meant');
  let stopAt = null; // pause here (a cut's "listen" ends 2 s after it)
  let skip = null; // [from, to]: jump over a cut ("listen without it")
  let selected = null; // the word button open in the editor

  const say = (text) => { status.textContent = text; };
  const clock = (t) => {
    const s = Math.max(0, Math.round(t * 10) / 10);
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = (s % 60).toFixed(1).padStart(4, '0');
    return (h ? String(h).padStart(2, '0') + ':' : '') + String(m).padStart(2, '0') + ':' + r;
  };

  async function post(what, body) {
    const r = await fetch('do/' + what, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    let d = {};
    try { d = await r.json(); } catch (e) { /* not JSON: the status says enough */ }
    if (!r.ok || !d.ok) throw new Error(d.error || 'HTTP ' + r.status);
    return d;
  }

  async function save(what, body, done) {
    try {
      const d = await post(what, body);
      say('Saved to ' + d.file + '. Apply rebuilds the episode with it.');
      if (done) done(d);
    } catch (e) {
      say('Not saved: ' + e.message);
    }
  }

  function playFrom(t, opts) {
    stopAt = opts && opts.until !== undefined ? opts.until : null;
    skip = opts && opts.skip ? opts.skip : null;
    player.currentTime = Math.max(0, t);
    player.play().catch(() => {});
  }

  // Cut previews need more than timeupdate's 4 Hz: watch every frame while playing.
  function watch() {
    if (!player.paused) {
      const t = player.currentTime;
      if (skip && t >= skip[0]) { player.currentTime = skip[1]; skip = null; }
      if (stopAt !== null && t >= stopAt) { player.pause(); stopAt = null; }
    }
    requestAnimationFrame(watch);
  }
  requestAnimationFrame(watch);

  // The waveform: wavesurfer.js (vendored) draws the peaks the server measured and drives the same <audio>.
  if (window.WaveSurfer) {
    fetch('peaks.json').then((r) => r.json()).then((d) => {
      window.WaveSurfer.create({
        container: '#waveform', media: player, peaks: [d.peaks], duration: d.duration, height: 72,
        waveColor: '#9aa5b1', progressColor: '#2f7d32', cursorColor: '#1b1f23', normalize: true, dragToSeek: true,
      });
    }).catch(() => { $('#waveform').textContent = 'The waveform could not be drawn.'; });
  }

  // Transcript: one tab stop per paragraph (roving tabindex), arrows between its words.
  function focusWord(b) {
    const para = b.closest('.para');
    para.querySelectorAll('button.w[tabindex="0"]').forEach((x) => { x.tabIndex = -1; });
    b.tabIndex = 0;
    b.focus();
  }
  function openEditor(b) {
    selected = b;
    $('#heard').textContent = b.textContent;
    $('#at').textContent = b.dataset.clock;
    meant.value = b.textContent;
    b.closest('.para').after(editor);
    editor.hidden = false;
  }
  function closeEditor() {
    editor.hidden = true;
    if (selected) focusWord(selected);
  }
  document.addEventListener('keydown', (e) => {
    const w = e.target.closest && e.target.closest('button.w');
    if (!w) return;
    const ws = Array.from(w.closest('.para').querySelectorAll('button.w'));
    const i = ws.indexOf(w);
    const j = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: ws.length - 1 }[e.key];
    if (j === undefined) return;
    e.preventDefault();
    focusWord(ws[Math.max(0, Math.min(ws.length - 1, j))]);
  });
  editor.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.preventDefault(); closeEditor(); } });
  $('#cancel').addEventListener('click', closeEditor);
  editor.addEventListener('submit', (e) => {
    e.preventDefault();
    const b = selected;
    if (!b) return;
    save('correction', { index: +b.dataset.i, meant: meant.value }, () => {
      b.textContent = meant.value;
      b.classList.remove('unsure');
      b.classList.add('fixed');
      closeEditor();
    });
  });

  document.addEventListener('click', (e) => {
    const w = e.target.closest('button.w');
    if (w) { focusWord(w); openEditor(w); playFrom(+w.dataset.s); return; }
    const jump = e.target.closest('button.jump');
    if (jump) {
      const b = document.querySelector('button.w[data-i="' + jump.dataset.i + '"]');
      if (b) { b.scrollIntoView({ block: 'center' }); focusWord(b); openEditor(b); playFrom(+b.dataset.s); }
      return;
    }
    const at = e.target.closest('button.play-at');
    if (at) { playFrom(+at.dataset.s); return; }
    const now = e.target.closest('button.now');
    if (now) { now.closest('form').querySelector('input').value = clock(player.currentTime); return; }
    const cut = e.target.closest('fieldset.cut');
    if (cut && e.target.closest('button')) {
      const s = +cut.dataset.start, t = +cut.dataset.end;
      if (e.target.closest('.play-with')) playFrom(s - 2, { until: t + 2 });
      else playFrom(s - 2, { skip: [s, t], until: t + 2 });
    }
  });

  document.addEventListener('change', (e) => {
    const r = e.target.closest('fieldset.cut input[type=radio]');
    if (r) save('cut', { id: r.closest('fieldset').dataset.id, choice: r.value });
  });

  $$('form.speaker').forEach((f) => f.addEventListener('submit', (e) => {
    e.preventDefault();
    save('speaker', { label: f.dataset.label, name: f.querySelector('input').value });
  }));
  $$('form.chapter').forEach((f) => f.addEventListener('submit', (e) => {
    e.preventDefault();
    save('chapter', { index: +f.dataset.index, start: f.querySelector('input').value });
  }));

  const apply = $('#apply');
  apply.addEventListener('click', async () => {
    apply.disabled = true;
    apply.setAttribute('aria-busy', 'true');
    say('Rebuilding…');
    try {
      const d = await post('apply', {});
      const redone = d.stages.filter((s) => !s.cached).map((s) => s.name);
      sessionStorage.setItem('review-status', 'Applied in ' + d.seconds + ' s: ' +
        (redone.length ? 'made again: ' + redone.join(', ') : 'nothing changed') + '.');
      location.reload();
    } catch (e) {
      say('Not applied: ' + e.message);
      apply.disabled = false;
      apply.removeAttribute('aria-busy');
    }
  });
  const last = sessionStorage.getItem('review-status');
  if (last) { sessionStorage.removeItem('review-status'); say(last); }
})();
