/*
 * exports.js: keeps a background export's progress up to date without reloading the page.
 * Optional: without JavaScript the page has a "Check progress" link that reloads it.
 * Once the export is finished (or failed) the page is reloaded to show its download.
 */
(function () {
  'use strict';
  var box = document.getElementById('export-progress');
  if (!box || box.getAttribute('data-active') !== 'true' || !window.fetch) {
    return;
  }
  // The script keeps the figures current, so the manual link is not needed.
  var check = document.getElementById('export-check');
  if (check) {
    check.parentNode.removeChild(check);
  }
  var bar = document.getElementById('export-bar');
  var rows = document.getElementById('export-rows');
  var href = box.getAttribute('data-status-href');
  function number(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  function poll() {
    fetch(href, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        if (s.state !== 'queued' && s.state !== 'running') {
          window.location.reload();
          return;
        }
        if (bar) { bar.value = s.percent; bar.textContent = s.percent + '%'; }
        if (rows) {
          rows.textContent = number(s.rows_written) + ' of ' + number(s.rows_expected) +
            ' rows written (' + s.percent + '%).';
        }
        window.setTimeout(poll, 1500);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1500);
}());
