using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using DuckDB.NET.Data;
using Thermo.Pipeline.Report;
using Thermo.Trainer.Tests;

namespace Thermo.Cli.Tests;

/// <summary>
/// <c>thermo report</c> of a run made by <c>thermo import</c> from the committed checkpoint series
/// (tests/fixtures/pytorch/series): the plain series by epoch, the Hugging Face one by step. The
/// report's numbers are checked against the run's Parquet files, read here independently with DuckDB.
/// </summary>
public class ImportedReportTests
{
    static readonly string Series = Path.Combine(Repository.Root, "tests", "fixtures", "pytorch", "series");

    /// <summary>Imports a fixture series into <c>DIR/name</c> and, with a window, analyses it.</summary>
    static string Imported(TempDir dir, string series, string? window, string name = "run")
    {
        var run = dir[name];
        var imported = ThermoProcess.Run(dir.Path, "import", Path.Combine(Series, series), "--out", run, "--quiet");
        Assert.True(imported.Code == 0, imported.Err);
        if (window is not null)
        {
            var analysed = ThermoProcess.Run(dir.Path, "analyze", run, "--window", window, "--quiet");
            Assert.True(analysed.Code == 0, analysed.Err);
        }
        return run;
    }

    /// <summary>Reports the run; its figures and tables as <c>--json</c> lists them.</summary>
    static (string[] Figures, string[] Tables) Report(TempDir dir, string run)
    {
        var result = ThermoProcess.Run(dir.Path, "report", run, "--json");
        Assert.True(result.Code == 0, result.Err);
        var page = JsonDocument.Parse(result.Out).RootElement.GetProperty("pages")[0];
        Assert.Equal(Path.Combine(run, "report", "index.html"), page.GetProperty("page").GetString());
        Assert.Equal(Path.Combine(run, "report", "figures.html"), page.GetProperty("figures_page").GetString());
        string[] Names(string property) => page.GetProperty(property).EnumerateArray().Select(e => e.GetString()!).ToArray();
        var figures = Names("figures");
        foreach (var figure in figures) Assert.True(new FileInfo(Path.Combine(run, "report", figure)).Length > 5_000, figure);
        return (figures, Names("tables"));
    }

    /// <summary>The data the interactive page inlines: {"title", "runs": [payload], "windows"}.</summary>
    static JsonElement PageData(string run)
    {
        var html = File.ReadAllText(Path.Combine(run, "report", "index.html"));
        var json = Regex.Match(html, "<script id=\"thermo-data\" type=\"application/json\">(.*?)</script>", RegexOptions.Singleline).Groups[1].Value;
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    static string FiguresPage(string run) =>
        System.Net.WebUtility.HtmlDecode(File.ReadAllText(Path.Combine(run, "report", "figures.html")));

    static List<object?[]> Query(string sql) => DuckDb.Rows(sql);

    static double? Number(JsonElement e) => e.ValueKind == JsonValueKind.Null ? null : e.GetDouble();

    /// <summary>The page's training curves are source-metrics.parquet's rows: every time, and each column the
    /// source logged with its value at that time (null where the row has none); columns never logged are absent.</summary>
    static void SourceMetricsMatch(string run, JsonElement payload, string[] logged)
    {
        var file = Path.Combine(run, "source-metrics.parquet");
        var rows = Query($"SELECT time, loss, eval_loss, eval_accuracy, learning_rate FROM read_parquet('{file}') ORDER BY time");
        var metrics = payload.GetProperty("source_metrics");
        Assert.Equal(rows.Select(r => Convert.ToInt32(r[0])), metrics.GetProperty("time").EnumerateArray().Select(e => e.GetInt32()));
        var columns = metrics.GetProperty("columns");
        Assert.Equal(logged, columns.EnumerateObject().Select(c => c.Name));
        string[] names = ["loss", "eval_loss", "eval_accuracy", "learning_rate"];
        for (int c = 0; c < names.Length; c++)
        {
            var expected = rows.Select(r => r[c + 1] is double v && double.IsFinite(v) ? v : (double?)null).ToArray();
            if (!logged.Contains(names[c])) { Assert.All(expected, v => Assert.Null(v)); continue; }
            Assert.Equal(expected, columns.GetProperty(names[c]).EnumerateArray().Select(Number));
        }
    }

    /// <summary>The window payload's per-layer T, drift and oscillation are temperature.parquet's layer rows, to the bit.</summary>
    static void LayerTemperaturesMatch(string run, JsonElement data, string layer)
    {
        var rows = Query($"SELECT layer, temperature, drift_temperature, oscillation_temperature FROM read_parquet('{Path.Combine(run, "analysis", "temperature.parquet")}') WHERE grouping = 'layer'");
        Assert.NotEmpty(rows);
        var layers = data.GetProperty("windows").GetProperty("0").GetProperty("layers").GetProperty(layer).GetProperty("layers");
        Assert.Equal(rows.Select(r => (string)r[0]!).Order(), layers.EnumerateObject().Select(l => l.Name).Order());
        foreach (var r in rows)
        {
            var l = layers.GetProperty((string)r[0]!);
            Assert.Equal((double)r[1]!, l.GetProperty("t").GetDouble());
            Assert.Equal((double)r[2]!, l.GetProperty("drift").GetDouble());
            Assert.Equal((double)r[3]!, l.GetProperty("osc").GetDouble());
        }
    }

    /// <summary>figures.html's table of <paramref name="layer"/>'s filters: hottest first, each T as printed
    /// (4 significant digits) equal to temperature.parquet's unit row.</summary>
    static void FilterTableMatches(string run, string layer)
    {
        var html = File.ReadAllText(Path.Combine(run, "report", "figures.html"));
        var table = Regex.Match(html, $"<table data-table=\"filters-{layer}\">.*?<tbody>(.*?)</tbody>", RegexOptions.Singleline).Groups[1].Value;
        var printed = Regex.Matches(table, "<tr>(.*?)</tr>").Select(m => Regex.Matches(m.Groups[1].Value, "<td>(.*?)</td>").Select(c => c.Groups[1].Value).ToArray()).ToArray();
        var rows = Query($"SELECT unit, temperature FROM read_parquet('{Path.Combine(run, "analysis", "temperature.parquet")}') WHERE grouping = 'unit' AND layer = '{layer}' ORDER BY temperature DESC");
        Assert.Equal(rows.Count, printed.Length);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal((i + 1).ToString(CultureInfo.InvariantCulture), printed[i][0]);
            Assert.Equal(Convert.ToInt32(rows[i][0]).ToString(CultureInfo.InvariantCulture), printed[i][1]);
            var t = (double)rows[i][1]!;
            Assert.Equal(t, double.Parse(printed[i][2], CultureInfo.InvariantCulture), t * 1e-3);
        }
    }

    [Fact]
    public void A_report_of_an_imported_plain_series_draws_its_source_metrics_and_its_analysis_by_epoch()
    {
        using var dir = new TempDir();
        var run = Imported(dir, "plain", "0:5");
        var (figures, tables) = Report(dir, run);
        Assert.Equal(
        [
            "source-loss.png", "source-eval_loss.png", "source-learning_rate.png",
            "layer-temperatures.png", "temperature-per-epoch.png",
            "filter-temperatures-conv1.png", "filter-temperature-per-epoch-conv1.png", "temperature-vs-l1-conv1.png",
            "trajectories-hottest.png", "trajectories-coldest.png", "velocities-hottest.png", "velocities-coldest.png",
            "mean-square-velocity-conv1.png", "filters-conv1.png", "msd-conv1.png", "msd-drift-corrected-conv1.png",
        ], figures);
        Assert.Equal(["filters-conv1"], tables);

        var html = FiguresPage(run);
        Assert.Contains("imported from 6 checkpoints (layout Files: checkpoint files of a plain training loop; format torch-zip), epochs 0..5", html);
        Assert.Contains("What the source logged (source-metrics.parquet: loss, eval_loss, learning_rate)", html);
        Assert.Contains("Equilibrium temperatures over epochs 0..5", html);
        Assert.Contains("Left out: gradient noise", html);
        Assert.DoesNotContain("gradnoise.parquet", html);
        Assert.DoesNotContain("data-table=\"pruning\"", html);
        FilterTableMatches(run, "conv1");

        var data = PageData(run);
        var payload = data.GetProperty("runs")[0];
        Assert.Equal("epoch", payload.GetProperty("time_unit").GetString());
        Assert.Equal(5, payload.GetProperty("last_epoch").GetInt32());
        var source = payload.GetProperty("source");
        Assert.Equal(("Files", 6, "torch-zip"), (source.GetProperty("layout").GetString(), source.GetProperty("checkpoints").GetInt32(), source.GetProperty("formats")[0].GetString()));
        Assert.Equal(JsonValueKind.Null, payload.GetProperty("training_note").ValueKind);
        SourceMetricsMatch(run, payload, ["loss", "eval_loss", "learning_rate"]);   // the plain series logs no accuracy
        LayerTemperaturesMatch(run, data, "conv1");
        Assert.Equal((0, 5), (data.GetProperty("windows").GetProperty("0").GetProperty("from").GetInt32(), data.GetProperty("windows").GetProperty("0").GetProperty("to").GetInt32()));
    }

    [Fact]
    public void A_report_of_an_imported_hugging_face_series_is_by_step_with_uneven_snapshots()
    {
        using var dir = new TempDir();
        var run = Imported(dir, "huggingface", "5:80");
        var (figures, _) = Report(dir, run);
        Assert.Equal(["source-loss.png", "source-eval_loss.png", "source-eval_accuracy.png", "source-learning_rate.png"], figures.Take(4));
        Assert.Contains("temperature-per-step.png", figures);
        Assert.Contains(figures, f => f.StartsWith("filter-temperature-per-step-", StringComparison.Ordinal));
        Assert.Contains(figures, f => f.StartsWith("msd-", StringComparison.Ordinal));
        Assert.DoesNotContain(figures, f => f.Contains("epoch", StringComparison.Ordinal));
        Assert.DoesNotContain("gradient-noise.png", figures);

        var html = FiguresPage(run);
        Assert.Contains("imported from 5 checkpoints (layout HuggingFace: Hugging Face Trainer checkpoint directories; format safetensors), steps 5..80", html);
        Assert.Contains("Equilibrium temperatures over steps 5..80", html);
        Assert.Contains("per step of the window", html);
        Assert.DoesNotContain("per epoch", html);

        var data = PageData(run);
        var payload = data.GetProperty("runs")[0];
        Assert.Equal("step", payload.GetProperty("time_unit").GetString());
        Assert.Equal(80, payload.GetProperty("last_epoch").GetInt32());
        SourceMetricsMatch(run, payload, ["loss", "eval_loss", "eval_accuracy", "learning_rate"]);
        var layer = payload.GetProperty("layers")[0].GetString()!;
        LayerTemperaturesMatch(run, data, payload.GetProperty("units").EnumerateObject().First().Name);
        // T(e) of a layer at each step of the window: the unevenly spaced snapshot steps, with instantaneous.parquet's values
        var instantaneous = Query($"SELECT epoch, temperature FROM read_parquet('{Path.Combine(run, "analysis", "instantaneous.parquet")}') WHERE layer = '{layer}' AND unit = -1 ORDER BY epoch");
        var series = payload.GetProperty("layer_temperature").GetProperty(layer);
        Assert.Equal([10, 20, 40, 80], series.GetProperty("epoch").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(instantaneous.Select(r => Convert.ToInt32(r[0])), series.GetProperty("epoch").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(instantaneous.Select(r => (double)r[1]!), series.GetProperty("t").EnumerateArray().Select(e => e.GetDouble()));

        // The figures' time axes are labelled in the run's unit.
        var tables = RunTables.Load(run);
        Assert.True(tables.Imported);
        Assert.Equal("step", tables.TimeName);
        Assert.Equal("step", Figures.TemperatureOverTime(tables, null, "kinetic").Axes.Bottom.Label.Text);
        Assert.Equal("step", Figures.SourceMetric(tables, "eval_accuracy").Axes.Bottom.Label.Text);
        Assert.Equal("eval_accuracy", Figures.SourceMetric(tables, "eval_accuracy").Axes.Left.Label.Text);

        // The interactive page in a browser: no errors, the last step, T(e) read out by step; and a
        // window chosen on the page (steps 10..80: intervals of 10, 20 and 40 steps) gives each
        // layer the T that `thermo analyze --window 10:80` gives it, the Δt-weighted mean of T(e).
        var page = PageTests.Drive(Path.Combine(run, "report", "index.html"), dir["page.png"], "--window", "10:80");
        PageTests.NoErrors(page);
        Assert.Equal("80", page.GetProperty("epochCount").GetString());
        Assert.StartsWith("step ", page.GetProperty("tooltip").GetString());
        var narrower = Imported(dir, "huggingface", "10:80", "run-10-80");
        var analysed = Query($"SELECT layer, temperature FROM read_parquet('{Path.Combine(narrower, "analysis", "temperature.parquet")}') WHERE unit = -1")
            .ToDictionary(r => (string)r[0]!, r => (double)r[1]!);
        var shown = page.GetProperty("windowAfter").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "run T").GetProperty("data").EnumerateArray().ToArray();
        var layers = payload.GetProperty("layers").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(layers.Length, shown.Length);
        for (int l = 0; l < layers.Length; l++)
        {
            double expected = analysed[layers[l]], actual = shown[l].GetProperty("real").GetDouble();
            Assert.True(Math.Abs(actual - expected) <= 1e-9 * expected, $"{layers[l]}: the page's T over steps 10..80 is {actual:R}, thermo analyze's {expected:R}");
        }
        // A window that starts between snapshots (15: inside the interval 10..20) is refused, as analyze refuses it,
        // rather than averaged over an interval that begins before it.
        var refused = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "15:80", "--quiet");
        Assert.Contains("a window's ends must fall on snapshots", refused.Err);
        var between = PageTests.Drive(Path.Combine(run, "report", "index.html"), dir["between.png"], "--window", "15:80");
        PageTests.NoErrors(between);
        Assert.Contains("a window's ends are snapshots; the page has steps 5, 10, 20, 40, 80", between.GetProperty("windowNote").GetString());
        Assert.DoesNotContain(between.GetProperty("windowAfter").EnumerateArray(), s => s.GetProperty("name").GetString() == "run T");
    }

    [Fact]
    public void A_page_of_a_run_by_epoch_beside_a_run_by_step_names_both_units()
    {
        using var dir = new TempDir();
        var trained = AnalyzeTests.TrainedRun(dir, 4, "trained");
        var analysed = ThermoProcess.Run(dir.Path, "analyze", trained, "--window", "last:3", "--quiet");
        Assert.True(analysed.Code == 0, analysed.Err);
        var imported = Imported(dir, "huggingface", "5:80", "imported");
        var report = ThermoProcess.Run(dir.Path, "report", trained, imported, "--out", dir["both"], "--quiet");
        Assert.True(report.Code == 0, report.Err);
        var page = PageTests.Drive(Path.Combine(dir["both"], "index.html"), dir["both.png"], "--window", "2:4");
        PageTests.NoErrors(page);
        // One shared time axis: it names both units, and each run's series its own.
        Assert.Equal("epoch or step", page.GetProperty("temperatureAxis").GetString());
        var series = page.GetProperty("temperatureSeries").EnumerateArray().Select(s => s.GetString()!).ToArray();
        Assert.Contains(series, n => n.StartsWith("trained (epochs) ", StringComparison.Ordinal));
        Assert.Contains(series, n => n.StartsWith("imported (steps) ", StringComparison.Ordinal));
        Assert.All(series, n => Assert.Matches(@"^(trained \(epochs\)|imported \(steps\)) ", n));
        // A window is in the first run's unit, epochs: epochs 2..4 are the trained run's, never steps 2..4 of the imported one.
        var windowed = page.GetProperty("windowAfter").EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray();
        Assert.Contains("trained (epochs) T", windowed);
        Assert.DoesNotContain(windowed, n => n.StartsWith("imported", StringComparison.Ordinal));
        Assert.Contains("imported: by steps, the window in epochs", page.GetProperty("windowNote").GetString());
        // The count at the top is of the window's unit: the trained run's last epoch, not the imported run's last step.
        Assert.Equal("4", page.GetProperty("epochCount").GetString());
    }

    [Fact]
    public void An_imported_run_without_source_metrics_is_reported_without_the_training_panel()
    {
        using var dir = new TempDir();
        var run = Imported(dir, "plain", window: null);
        File.Delete(Path.Combine(run, "source-metrics.parquet"));

        // Not analysed yet: the report says so, and why there are no training curves.
        var (figures, tables) = Report(dir, run);
        Assert.Empty(figures);
        Assert.Empty(tables);
        var html = FiguresPage(run);
        Assert.Contains("No training curves: the run has no source-metrics.parquet", html);
        Assert.Contains("The run has not been analysed", html);

        var analysed = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "0:5", "--quiet");
        Assert.True(analysed.Code == 0, analysed.Err);
        (figures, _) = Report(dir, run);
        Assert.Equal("layer-temperatures.png", figures[0]);
        Assert.DoesNotContain(figures, f => f.StartsWith("source-", StringComparison.Ordinal) || f is "loss.png" or "accuracy.png");
        html = FiguresPage(run);
        Assert.Single(Regex.Matches(html, "<h2>Training</h2>"));
        Assert.Contains("No training curves", html);
        var data = PageData(run);
        var payload = data.GetProperty("runs")[0];
        Assert.Equal(JsonValueKind.Null, payload.GetProperty("source_metrics").ValueKind);
        Assert.Contains("no source-metrics.parquet", payload.GetProperty("training_note").GetString());
        LayerTemperaturesMatch(run, data, "conv1");

        // A directory that is neither a trained nor an imported run is still refused.
        Directory.CreateDirectory(dir["empty"]);
        var refused = ThermoProcess.Run(dir.Path, "report", dir["empty"]);
        Assert.Equal(2, refused.Code);
        Assert.Contains("no metrics.parquet", refused.Err);
    }
}
