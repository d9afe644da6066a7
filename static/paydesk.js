/*
 * paydesk.js — small progressive enhancements for the paydesk console.
 *
 * Everything here is optional: every page works without JavaScript.
 * Loaded with <script defer>, so the DOM is parsed before this runs.
 * No dependencies, no eval, no inline handlers (the CSP is default-src 'self').
 */
(function () {
  'use strict';

  // How long a second submit of the same form is ignored, in ms.
  var DOUBLE_SUBMIT_WINDOW = 1000;

  /*
   * (a) Error summary: move focus to it on page load so screen-reader and
   * keyboard users land on the list of problems. The template already sets
   * tabindex="-1"; it is added here too in case a page forgets.
   */
  function focusErrorSummary() {
    var summary = document.querySelector('.govuk-error-summary');
    if (!summary) {
      return;
    }
    if (!summary.hasAttribute('tabindex')) {
      summary.setAttribute('tabindex', '-1');
    }
    summary.focus();
  }

  /*
   * Clicking an error-summary link: without JS the browser jumps to the
   * field, which hides its label above the top of the viewport. Instead,
   * scroll the field's <legend> or <label> into view and focus the field.
   */
  function labelFor(input) {
    var fieldset = input.closest('fieldset');
    if (fieldset) {
      var legend = fieldset.querySelector('legend');
      if (legend) {
        return legend;
      }
    }
    if (input.id) {
      return document.querySelector('label[for="' + cssEscape(input.id) + '"]');
    }
    return null;
  }

  function cssEscape(value) {
    if (window.CSS && typeof window.CSS.escape === 'function') {
      return window.CSS.escape(value);
    }
    return String(value).replace(/["\\]/g, '\\$&');
  }

  function onErrorSummaryClick(event) {
    var target = event.target;
    var link = target && target.closest ? target.closest('.govuk-error-summary a[href^="#"]') : null;
    if (!link) {
      return;
    }
    var id = decodeURIComponent(link.getAttribute('href').slice(1));
    var input = id ? document.getElementById(id) : null;
    if (!input) {
      return; // let the browser follow the link as usual
    }
    event.preventDefault();
    var label = labelFor(input);
    if (label) {
      label.scrollIntoView();
    } else {
      input.scrollIntoView();
    }
    input.focus({ preventScroll: true });
  }

  /*
   * (b) Double-submit protection for buttons with data-prevent-double-click.
   *
   * The button is NOT disabled: a disabled button's name/value would be
   * left out of the submission. Instead, after the first submit it gets
   * aria-disabled="true" (styled as disabled) for one second, and any
   * further submit of the same form in that second is cancelled.
   */
  function shouldGuard(form, submitter) {
    if (submitter) {
      return submitter.hasAttribute('data-prevent-double-click');
    }
    // Enter in a field in an older browser without event.submitter.
    return form.querySelector('[data-prevent-double-click]') !== null;
  }

  function onSubmit(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) {
      return; // someone else (e.g. validation) already stopped this submit
    }
    var submitter = event.submitter || null;
    if (!shouldGuard(form, submitter)) {
      return;
    }

    var now = Date.now();
    var last = Number(form.getAttribute('data-paydesk-submitted-at') || 0);
    if (now - last < DOUBLE_SUBMIT_WINDOW) {
      event.preventDefault();
      return;
    }
    form.setAttribute('data-paydesk-submitted-at', String(now));

    var buttons = submitter
      ? [submitter]
      : Array.prototype.slice.call(form.querySelectorAll('[data-prevent-double-click]'));
    buttons.forEach(function (button) {
      button.setAttribute('aria-disabled', 'true');
    });
    window.setTimeout(function () {
      buttons.forEach(function (button) {
        button.removeAttribute('aria-disabled');
      });
    }, DOUBLE_SUBMIT_WINDOW);
  }

  /*
   * Coming back with the browser's Back button can restore the page from
   * the back/forward cache with the guard still set; clear it.
   */
  function onPageShow(event) {
    if (!event.persisted) {
      return;
    }
    // A step of a flow whose answer may have changed since (a "Check your answers" page once
    // confirmed, a "Confirm it's you" page once done) is read again rather than shown as it
    // was: the server says what now holds.
    if (document.querySelector('[data-paydesk-reload-on-back]')) {
      window.location.reload();
      return;
    }
    var forms = document.querySelectorAll('form[data-paydesk-submitted-at]');
    Array.prototype.forEach.call(forms, function (form) {
      form.removeAttribute('data-paydesk-submitted-at');
    });
    var buttons = document.querySelectorAll('[data-prevent-double-click][aria-disabled="true"]');
    Array.prototype.forEach.call(buttons, function (button) {
      button.removeAttribute('aria-disabled');
    });
  }

  /*
   * (c) Idle-timeout warning (WCAG 2.2.1). The server says how many seconds the session has
   * left; warn-seconds before the end the dialog appears with a "Stay signed in" button, which
   * posts its form in the background (restarting the server's idle timer) and closes the
   * dialog. If nothing is done, the page goes to the sign-in page, which will bring the person
   * back here. Without JavaScript none of this runs and the server alone decides.
   */
  function initTimeoutWarning() {
    var dialog = document.getElementById('paydesk-timeout');
    if (!dialog || !window.fetch) {
      return;
    }
    var left = Number(dialog.getAttribute('data-seconds-left'));
    var warn = Number(dialog.getAttribute('data-warn-seconds'));
    if (!(left > 0) || !(warn > 0)) {
      return;
    }
    var form = dialog.querySelector('form');
    var next = form.querySelector('input[name="next"]');
    var here = window.location.pathname + window.location.search;
    next.value = here;
    var countdown = dialog.querySelector('.paydesk-timeout-countdown');
    var endsAt = Date.now() + left * 1000;
    var lastFocus = null;
    var ticker = null;
    var warnTimer = null;
    var endTimer = null;

    function describe(seconds) {
      if (seconds > 60) {
        var minutes = Math.ceil(seconds / 60);
        return minutes + ' minutes';
      }
      return seconds + (seconds === 1 ? ' second' : ' seconds');
    }

    function tick() {
      var seconds = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
      countdown.textContent = describe(seconds);
    }

    function open() {
      lastFocus = document.activeElement;
      dialog.hidden = false;
      document.documentElement.classList.add('paydesk-timeout-open');
      tick();
      ticker = window.setInterval(tick, 1000);
      dialog.focus();
    }

    function close() {
      dialog.hidden = true;
      document.documentElement.classList.remove('paydesk-timeout-open');
      window.clearInterval(ticker);
      if (lastFocus && lastFocus.focus) {
        lastFocus.focus();
      }
    }

    function schedule(secondsLeft) {
      window.clearTimeout(warnTimer);
      window.clearTimeout(endTimer);
      endsAt = Date.now() + secondsLeft * 1000;
      warnTimer = window.setTimeout(open, Math.max(0, secondsLeft - warn) * 1000);
      endTimer = window.setTimeout(function () {
        window.location.href = '/login?reason=timeout&next=' + encodeURIComponent(here);
      }, secondsLeft * 1000);
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      window.fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        credentials: 'same-origin',
        headers: { Accept: 'application/json' }
      }).then(function (response) {
        if (response.ok) {
          close();
          schedule(left);
        } else {
          form.submit();
        }
      }, function () {
        form.submit();
      });
    });

    // Keep keyboard focus inside the dialog while it is open.
    dialog.addEventListener('keydown', function (event) {
      if (event.key === 'Tab') {
        var button = form.querySelector('button');
        event.preventDefault();
        button.focus();
      }
    });

    schedule(left);
  }

  /*
   * A bulk refund batch's progress (data-progress: where to read it as JSON)
   * updates every 2 seconds while the batch is sending; the page works the
   * same without it (reload to see the latest figures).
   */
  function initBatchProgress() {
    var box = document.querySelector('[data-progress]');
    if (!box || !window.fetch) {
      return;
    }
    var url = box.getAttribute('data-progress');
    function set(name, value) {
      var el = box.querySelector('[data-field="' + name + '"]');
      if (el) {
        el.textContent = String(value);
      }
    }
    function poll() {
      window.fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) {
            return;
          }
          var p = data.progress;
          ['percent', 'requested', 'succeeded', 'failed', 'in_flight'].forEach(function (k) {
            set(k, p[k]);
          });
          var bar = box.querySelector('progress');
          if (bar) {
            bar.value = p.percent;
            bar.textContent = p.percent + '%';
          }
          var unfinished = p.waiting + p.in_flight > 0;
          if (data.state === 'sending' || (data.state === 'sent' && unfinished)) {
            window.setTimeout(poll, 2000);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  function init() {
    initBatchProgress();
    focusErrorSummary();
    initTimeoutWarning();
    document.addEventListener('click', onErrorSummaryClick);
    // Bubble phase, so handlers on the form itself run first and can
    // cancel the submit before it is counted.
    document.addEventListener('submit', onSubmit);
    window.addEventListener('pageshow', onPageShow);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
