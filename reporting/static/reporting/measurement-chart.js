// The measurement chart: requests (bars), wins and impressions (lines) per hour or day in
// the organisation's time zone. Data comes from the page (json_script).
(function () {
  "use strict";
  var source = document.getElementById("measurement-chart-data");
  var canvas = document.getElementById("measurement-chart");
  if (!source || !canvas || !window.Chart) return;
  var data = JSON.parse(source.textContent);
  var narrow = window.matchMedia("(max-width: 600px)").matches;
  var font = { size: narrow ? 12 : 13 };
  window.measurementChart = new window.Chart(canvas, {
    data: {
      labels: data.labels,
      datasets: [
        { type: "bar", label: "Requests", data: data.requests, backgroundColor: "#2455d1", order: 2 },
        { type: "line", label: "Wins", data: data.wins, borderColor: "#2f9e44", backgroundColor: "#2f9e44", order: 1 },
        { type: "line", label: "Impressions", data: data.impressions, borderColor: "#d17a24", backgroundColor: "#d17a24", order: 0 }
      ]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { position: "bottom", labels: { font: font, boxWidth: 14 } },
        tooltip: { titleFont: font, bodyFont: font }
      },
      scales: {
        x: {
          title: { display: true, text: (data.unit === "hour" ? "Hour" : "Day") + " (" + data.zone + ")", font: font },
          ticks: { font: font, autoSkip: true, maxTicksLimit: narrow ? 6 : 12, maxRotation: 0 }
        },
        y: { beginAtZero: true, ticks: { font: font, precision: 0 } }
      }
    }
  });
  canvas.setAttribute("data-rendered", "1");
})();
