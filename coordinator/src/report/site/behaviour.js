// The HTML report's behaviour, inlined into index.html: a click on a table header sorts the
// table by that column (again: the other way), and the pickers choose the leaderboard and the
// dataset whose tables and charts are shown. Without script every board stays visible.
(function () {
  'use strict';

  // ----- sortable tables ------------------------------------------------------------------

  // A cell's sort key: its data-value as a number (null when empty: no value), else its text.
  function cellKey(cell) {
    if (cell.hasAttribute('data-value')) {
      var text = cell.getAttribute('data-value');
      return text === '' ? null : Number(text);
    }
    return cell.textContent.trim();
  }

  function compareKeys(left, right) {
    if (typeof left === 'number' && typeof right === 'number') {
      return left - right;
    }
    return String(left).localeCompare(String(right), undefined, { numeric: true });
  }

  function sortBy(header) {
    var table = header.closest('table');
    var column = Array.prototype.indexOf.call(header.parentElement.children, header);
    var ascending = header.getAttribute('aria-sort') !== 'ascending';
    table.querySelectorAll('thead th').forEach(function (th) {
      th.removeAttribute('aria-sort');
    });
    header.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var entries = Array.prototype.map.call(body.rows, function (row, index) {
      return { row: row, key: cellKey(row.cells[column]), index: index };
    });
    entries.sort(function (left, right) {
      // Rows without a value go last either way; equal keys keep their order.
      if (left.key === null || right.key === null) {
        return (left.key === null) - (right.key === null) || left.index - right.index;
      }
      var order = compareKeys(left.key, right.key);
      return (ascending ? order : -order) || left.index - right.index;
    });
    entries.forEach(function (entry) {
      body.appendChild(entry.row);
    });
  }

  document.querySelectorAll('table.sortable thead th').forEach(function (th) {
    th.querySelector('button').addEventListener('click', function () {
      sortBy(th);
    });
  });

  // ----- the leaderboard pickers ----------------------------------------------------------

  // In the order they narrow the choice; the evaluation picker exists only with both evaluation
  // modes in the report, the training picker only with adversarial training.
  var keys = ['dataset', 'evaluation', 'training', 'ipc', 'mode'].filter(function (key) {
    return document.getElementById('pick-' + key) !== null;
  });
  var boards = Array.prototype.slice.call(document.querySelectorAll('.board'));
  var sections = Array.prototype.slice.call(document.querySelectorAll('.dataset'));
  var noBoard = document.getElementById('no-board');

  function picker(key) {
    return document.getElementById('pick-' + key);
  }

  function hasBoard(choice, upTo) {
    return boards.some(function (board) {
      return keys.slice(0, upTo + 1).every(function (key) {
        return board.getAttribute('data-' + key) === choice[key];
      });
    });
  }

  function update() {
    var choice = {};
    keys.forEach(function (key, position) {
      var select = picker(key);
      // An option is offered when some board has it under the choices made before it.
      Array.prototype.forEach.call(select.options, function (option) {
        choice[key] = option.value;
        option.disabled = !hasBoard(choice, position);
      });
      if (select.selectedOptions.length === 0 || select.selectedOptions[0].disabled) {
        var offered = Array.prototype.find.call(select.options, function (option) {
          return !option.disabled;
        });
        if (offered) {
          select.value = offered.value;
        }
      }
      choice[key] = select.value;
    });
    var shown = 0;
    boards.forEach(function (board) {
      var match = keys.every(function (key) {
        return board.getAttribute('data-' + key) === choice[key];
      });
      board.hidden = !match;
      shown += match ? 1 : 0;
    });
    noBoard.hidden = shown > 0;
    sections.forEach(function (section) {
      section.hidden = section.getAttribute('data-dataset') !== choice.dataset;
    });
  }

  keys.forEach(function (key) {
    picker(key).addEventListener('change', update);
  });
  update();
})();
