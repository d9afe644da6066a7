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
    var forms = document.querySelectorAll('form[data-paydesk-submitted-at]');
    Array.prototype.forEach.call(forms, function (form) {
      form.removeAttribute('data-paydesk-submitted-at');
    });
    var buttons = document.querySelectorAll('[data-prevent-double-click][aria-disabled="true"]');
    Array.prototype.forEach.call(buttons, function (button) {
      button.removeAttribute('aria-disabled');
    });
  }

  function init() {
    focusErrorSummary();
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
