// The reports' charts, on the report page and the measurement page: counts per hour or day
// in the organisation's time zone, bars and lines, drawn with Chart.js (served from our own
// static files). A page puts its data beside its canvas (json_script, id "<canvas id>-data");
// the series and the value axes of each chart are below, the rest is shared.
(function () {
  "use strict";
  var CHARTS = {
    // Impressions (bars) and clicks (line, on an axis of its own), with the previous
    // period's impressions dashed.
    "report-chart": {
      name: "reportChart",
      datasets: function (data) {
        return [
          { type: "bar", label: "Impressions", data: data.impressions, backgroundColor: "#2455d1", yAxisID: "y", order: 2 },
          { type: "line", label: data.previous_label, data: data.previous_impressions, borderColor: "#8a93a6", borderDash: [6, 4], pointRadius: 0, yAxisID: "y", order: 1 },
          { type: "line", label: "Clicks", data: data.clicks, borderColor: "#d17a24", backgroundColor: "#d17a24", yAxisID: "clicks", order: 0 }
        ];
      },
      axes: function (font) {
        return {
          y: {
            beginAtZero: true,
            title: { display: true, text: "Impressions", font: font },
            ticks: { font: font, precision: 0 }
          },
          clicks: {
            position: "right",
            beginAtZero: true,
            grid: { drawOnChartArea: false },
            title: { display: true, text: "Clicks", font: font },
            ticks: { font: font, precision: 0 }
          }
        };
      }
    },
    // Requests (bars), wins and impressions (lines).
    "measurement-chart": {
      name: "measurementChart",
      datasets: function (data) {
        return [
          { type: "bar", label: "Requests", data: data.requests, backgroundColor: "#2455d1", order: 2 },
          { type: "line", label: "Wins", data: data.wins, borderColor: "#2f9e44", backgroundColor: "#2f9e44", order: 1 },
          { type: "line", label: "Impressions", data: data.impressions, borderColor: "#d17a24", backgroundColor: "#d17a24", order: 0 }
        ];
      },
      axes: function (font) {
        return { y: { beginAtZero: true, ticks: { font: font, precision: 0 } } };
      }
    }
  };

  function draw(id, chart) {
    var source = document.getElementById(id + "-data");
    var canvas = document.getElementById(id);
    if (!source || !canvas) return;
    var data = JSON.parse(source.textContent);
    var narrow = window.matchMedia("(max-width: 600px)").matches;
    var font = { size: narrow ? 12 : 13 };
    var scales = {
      x: {
        title: { display: true, text: (data.unit === "hour" ? "Hour" : "Day") + " (" + data.zone + ")", font: font },
        ticks: { font: font, autoSkip: true, maxTicksLimit: narrow ? 6 : 12, maxRotation: 0 }
      }
    };
    var axes = chart.axes(font);
    Object.keys(axes).forEach(function (key) { scales[key] = axes[key]; });
    // Kept on window for the browser tests (and a curious reader's console).
    window[chart.name] = new window.Chart(canvas, {
      data: { labels: data.labels, datasets: chart.datasets(data) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { font: font, boxWidth: 14 } },
          tooltip: { titleFont: font, bodyFont: font }
        },
        scales: scales
      }
    });
    canvas.setAttribute("data-rendered", "1");
  }

  if (!window.Chart) return;
  Object.keys(CHARTS).forEach(function (id) { draw(id, CHARTS[id]); });
})();
