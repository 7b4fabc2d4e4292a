// The report chart: impressions (bars) and clicks (line) per hour or day in the
// organisation's time zone, with the previous period's impressions dashed. Data comes from
// the page (json_script); Chart.js is served from our own static files.
(function () {
  "use strict";
  var source = document.getElementById("report-chart-data");
  var canvas = document.getElementById("report-chart");
  if (!source || !canvas || !window.Chart) return;
  var data = JSON.parse(source.textContent);
  var narrow = window.matchMedia("(max-width: 600px)").matches;
  var font = { size: narrow ? 12 : 13 };
  window.reportChart = new window.Chart(canvas, {
    data: {
      labels: data.labels,
      datasets: [
        { type: "bar", label: "Impressions", data: data.impressions, backgroundColor: "#2455d1", yAxisID: "y", order: 2 },
        { type: "line", label: data.previous_label, data: data.previous_impressions, borderColor: "#8a93a6", borderDash: [6, 4], pointRadius: 0, yAxisID: "y", order: 1 },
        { type: "line", label: "Clicks", data: data.clicks, borderColor: "#d17a24", backgroundColor: "#d17a24", yAxisID: "clicks", order: 0 }
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
      }
    }
  });
  canvas.setAttribute("data-rendered", "1");
})();
