using Thermo.Trainer.Tests;
using System.Diagnostics;
using System.Text.Json;
using SkiaSharp;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary><c>thermo report</c> and the command-line experience, through the real executable.</summary>
public class ReportTests
{
    static readonly string[] RunFigures =
    [
        "loss.png", "accuracy.png", "layer-temperatures.png", "temperature-per-epoch.png",
        "filter-temperatures-conv1.png", "filter-temperature-per-epoch-conv1.png", "temperature-vs-l1-conv1.png",
        "trajectories-hottest.png", "trajectories-coldest.png", "velocities-hottest.png", "velocities-coldest.png",
        "mean-square-velocity-conv1.png", "filters-conv1.png", "msd-conv1.png", "msd-drift-corrected-conv1.png",
        "gradient-noise.png", "prune-curves-conv1.png",
    ];

    internal static string PrunedRun(TempDir dir, string name, long seed = 1)
    {
        var data = Directory.Exists(dir["data"]) ? dir["data"] : TinyData.WriteMnistLike(dir["data"], 256, 64);
        using (var run = TrainingRun.Start(TinyData.QuickConfig(data, 4) with { Seed = seed }, dir[name], dir.Path, new SilentProgress())) run.Run();
        var pruned = ThermoProcess.Run(dir.Path, "prune", dir[name], "--window", "last:3", "--draws", "2", "--quiet");
        Assert.True(pruned.Code == 0, pruned.Err);
        return dir[name];
    }

    internal static string Root()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(d!.FullName, "Thermo.sln"))) d = d.Parent;
        return d.FullName;
    }

    /// <summary>Runs a program to completion (3 minutes at most); exit code, stdout, stderr.</summary>
    internal static (int Code, string Out, string Err) Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(true); throw new TimeoutException(file + " " + string.Join(' ', args)); }
        return (p.ExitCode, output, err.GetAwaiter().GetResult());
    }

    /// <summary>Loads the page in headless Chromium (tests/browser/check-report.mjs) and returns its findings.</summary>
    static JsonElement Browse(string page, string screenshot)
    {
        var (code, output, error) = Exec("node", Path.Combine(Root(), "tests", "browser", "check-report.mjs"), page, screenshot);
        Assert.True(code == 0, $"the browser check failed (needs /usr/bin/chromium and tests/browser/node_modules; `dotnet fsi build.fsx test` installs both): {error}");
        return JsonDocument.Parse(output).RootElement;
    }

    [Fact]
    public void The_report_holds_every_figure_and_table_and_loads_in_a_real_browser_without_errors()
    {
        using var dir = new TempDir();
        var run = PrunedRun(dir, "run");
        var result = ThermoProcess.Run(dir.Path, "report", run, "--json");
        Assert.True(result.Code == 0, result.Err);
        var json = JsonDocument.Parse(result.Out).RootElement.GetProperty("pages")[0];
        Assert.Equal(RunFigures, json.GetProperty("figures").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(["filters-conv1", "pruning"], json.GetProperty("tables").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(Path.Combine(run, "report", "index.html"), json.GetProperty("page").GetString());   // the interactive page (PageTests)
        var page = Path.Combine(run, "report", "figures.html");
        Assert.Equal(page, json.GetProperty("figures_page").GetString());
        var html = File.ReadAllText(page);
        Assert.Contains("<a href=\"index.html\">", html);
        foreach (var figure in RunFigures)
        {
            Assert.True(new FileInfo(Path.Combine(run, "report", figure)).Length > 5_000, figure);
            Assert.Contains($"data-file=\"{figure}\"", html);
        }
        Assert.Contains("With only the 3 &quot;coldest&quot; filters", html);   // k and m read back from results.parquet
        Assert.DoesNotContain("http://", html);   // self-contained: nothing to fetch
        Assert.DoesNotContain("https://", html);

        var browsed = Browse(page, dir["shot.png"]);
        Assert.Empty(browsed.GetProperty("consoleErrors").EnumerateArray());
        Assert.Empty(browsed.GetProperty("pageErrors").EnumerateArray());
        Assert.Empty(browsed.GetProperty("failedRequests").EnumerateArray());
        Assert.Empty(browsed.GetProperty("brokenImages").EnumerateArray());
        Assert.Equal(RunFigures.Length, browsed.GetProperty("images").GetInt32());
        using var shot = SKBitmap.Decode(dir["shot.png"]);
        var colours = new HashSet<uint>();
        for (int y = 0; y < shot.Height; y += 4)
            for (int x = 0; x < shot.Width; x += 4) colours.Add((uint)shot.GetPixel(x, y));
        Assert.True(colours.Count > 50, $"the screenshot looks blank ({colours.Count} colours)");
    }

    [Fact]
    public void Several_runs_get_a_page_comparing_them()
    {
        using var dir = new TempDir();
        var a = PrunedRun(dir, "a", 1);
        var b = PrunedRun(dir, "b", 2);
        var result = ThermoProcess.Run(dir.Path, "report", a, b, "--out", dir["both"], "--quiet");
        Assert.True(result.Code == 0, result.Err);
        Assert.Equal("", result.Err);   // --quiet
        foreach (var figure in new[] { "accuracy-across-runs.png", "temperature-spread-conv1.png", "prune-curves-conv1.png" })
            Assert.True(File.Exists(Path.Combine(dir["both"], figure)), figure);
        Assert.Contains("mean ± sample standard deviation over 2 runs", System.Net.WebUtility.HtmlDecode(File.ReadAllText(Path.Combine(dir["both"], "figures.html"))));
        Assert.True(File.Exists(Path.Combine(dir["both"], "index.html")), "the interactive page over both runs");
    }

    [Fact]
    public void Every_verb_has_help_listing_its_options_and_unknown_options_are_errors()
    {
        var verbs = new Dictionary<string, string[]>
        {
            ["train"] = ["--model", "--epochs", "--weight-decay", "--init-from", "--resume", "--resumable", "--json", "--quiet"],
            ["data setup"] = ["--json"],
            ["analyze"] = ["--window", "--groups", "--msd-layers", "--fit-lags"],
            ["prune"] = ["--layer", "--criteria", "--k", "--m", "--draws", "--curves", "--structural", "--finetune"],
            ["reproduce"] = ["--runs", "--epochs", "--window", "--weight-decay", "--full", "--scheduler", "--cpus-per-task"],
            ["report"] = ["--layer", "--out", "--width"],
            ["sweep"] = ["--from", "--threads", "--status", "--scheduler", "--partition", "--time", "--cpus-per-task", "--sbatch-option"],
            ["collect"] = ["--out"],
        };
        using var dir = new TempDir();
        foreach (var (verb, options) in verbs)
        {
            var help = ThermoProcess.Run(dir.Path, [.. verb.Split(' '), "--help"]);
            Assert.Equal(0, help.Code);
            foreach (var option in options) Assert.Contains(option, help.Out);
            var bad = ThermoProcess.Run(dir.Path, [.. verb.Split(' '), "--no-such-option"]);
            Assert.Equal(2, bad.Code);
            Assert.Contains("--no-such-option", bad.Err);
        }
        Assert.Contains("[default: conv1]", ThermoProcess.Run(dir.Path, "prune", "--help").Out);
    }

    [Fact]
    public void The_window_is_spelled_window_in_every_verb_and_the_old_spellings_are_hidden_aliases()
    {
        using var dir = new TempDir();
        foreach (var (verb, old) in new[] { ("analyze", (string?)null), ("prune", "--analyze"), ("reproduce pruning-paper", "--equilibrium"), ("sweep", "--equilibrium") })
        {
            var help = ThermoProcess.Run(dir.Path, [.. verb.Split(' '), "--help"]).Out;
            Assert.Contains("--window", help);
            if (old is not null) Assert.DoesNotContain(old, help);
        }
        // An old spelling still works: prune --analyze analyses the run first, as --window does.
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        using (var run = TrainingRun.Start(TinyData.QuickConfig(data, 3), dir["run"], dir.Path, new SilentProgress())) run.Run();
        var both = ThermoProcess.Run(dir.Path, "prune", dir["run"], "--window", "last:2", "--analyze", "last:2");
        Assert.Equal(2, both.Code);
        Assert.Contains("--window: also given as --analyze", both.Err);
        var reproduce = ThermoProcess.Run(dir.Path, "reproduce", "pruning-paper", "--window", "2:3", "--out", dir["repro"]);
        Assert.Equal(2, reproduce.Code);
        Assert.Contains("is not last:N", reproduce.Err);
        var pruned = ThermoProcess.Run(dir.Path, "prune", dir["run"], "--analyze", "last:2", "--draws", "1", "--curves", "none", "--quiet");
        Assert.True(pruned.Code == 0, pruned.Err);
        Assert.True(File.Exists(Path.Combine(dir["run"], "analysis", "temperature.parquet")));
    }

    [Fact]
    public void Json_output_parses_for_results_and_for_errors()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        var trained = ThermoProcess.Run(dir.Path, "train", "--data-dir", data, "--epochs", "3", "--widths", "4,4,8,8", "--threads", "1", "--out", dir["run"], "--json");
        Assert.True(trained.Code == 0, trained.Err);
        Assert.Equal(3, JsonDocument.Parse(trained.Out).RootElement.GetProperty("epochs").GetInt32());
        var analysed = ThermoProcess.Run(dir.Path, "analyze", dir["run"], "--window", "last:2", "--json");
        Assert.True(analysed.Code == 0, analysed.Err);
        var analysis = JsonDocument.Parse(analysed.Out).RootElement[0];
        Assert.Equal(2, analysis.GetProperty("window").GetProperty("velocities").GetInt32());
        Assert.Equal(5, analysis.GetProperty("layers").GetArrayLength());
        var pruned = ThermoProcess.Run(dir.Path, "prune", dir["run"], "--curves", "none", "--json");
        Assert.True(pruned.Code == 0, pruned.Err);
        Assert.Equal(4 * 5, JsonDocument.Parse(pruned.Out).RootElement.GetProperty("table").GetArrayLength());
        var failed = ThermoProcess.Run(dir.Path, "analyze", dir["nowhere"], "--json");
        Assert.Equal(2, failed.Code);
        Assert.Contains("does not exist", JsonDocument.Parse(failed.Out).RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public void The_example_script_reanalyses_a_run_with_the_library_in_fsi()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        using (var run = TrainingRun.Start(TinyData.QuickConfig(data, 3), dir["run"], dir.Path, new SilentProgress())) run.Run();
        var analysed = ThermoProcess.Run(dir.Path, "analyze", dir["run"], "--window", "last:2", "--json", "--quiet");
        var conv1 = JsonDocument.Parse(analysed.Out).RootElement[0].GetProperty("layers")[0].GetProperty("temperature").GetDouble();
        var (code, output, error) = Exec("dotnet", "fsi", Path.Combine(Root(), "examples", "reanalyze.fsx"), dir["run"], "last:2");
        Assert.True(code == 0, error);
        Assert.Contains("window 1..3 (last:2)", output);
        var line = output.Split('\n').First(l => l.TrimStart().StartsWith("conv1 "));
        var printed = double.Parse(line.Split("T = ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(conv1, printed, conv1 * 1e-3);   // %.4g of the same analysis
        Assert.Contains("filters, hottest first", output);
    }
}
