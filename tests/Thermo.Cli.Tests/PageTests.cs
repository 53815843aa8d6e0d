using Thermo.Trainer.Tests;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary>
/// A test that needs <c>thermo watch</c>: skipped, saying why, while the verb does not exist (its
/// <c>--help</c> fails).
/// </summary>
public sealed class WatchFactAttribute : FactAttribute
{
    static readonly Lazy<string?> Missing = new(() =>
    {
        using var dir = new TempDir();
        var help = ThermoProcess.Run(dir.Path, "watch", "--help");
        if (help.Code == 0 && help.Out.Contains("--port")) return null;   // an unknown verb prints the root help
        var why = "needs `thermo watch` (`thermo watch --help` lists no --port)";
        Console.WriteLine($"PageTests: live tests skipped: {why}");
        return why;
    });

    public WatchFactAttribute()
    {
        if (Missing.Value is { } why) Skip = why;
    }
}

/// <summary>
/// The interactive page (Thermo.Pipeline/Report/Page) in headless Chromium through
/// tests/browser/check-page.mjs: the static report opened from file://, and the same page served live by
/// <c>thermo watch</c>.
/// </summary>
public class PageTests
{
    /// <summary>Drives the page (a file or a URL) and returns check-page.mjs's findings.</summary>
    internal static JsonElement Drive(string target, string screenshot, params string[] options)
    {
        var (code, output, error) = ReportTests.Exec("node", [Path.Combine(ReportTests.Root(), "tests", "browser", "check-page.mjs"), target, screenshot, .. options]);
        Assert.True(code == 0, $"the browser check failed (needs /usr/bin/chromium and tests/browser/node_modules; `dotnet fsi build.fsx test` installs both): {error}");
        var result = JsonDocument.Parse(output).RootElement;
        Assert.False(result.TryGetProperty("failure", out var failure), $"the page check stopped: {failure}\n{output}");
        return result;
    }

    internal static void NoErrors(JsonElement page)
    {
        foreach (var kind in new[] { "consoleErrors", "pageErrors", "failedRequests" })
            Assert.True(page.GetProperty(kind).GetArrayLength() == 0, $"{kind}: {page.GetProperty(kind)}");
    }

    static string[] Names(JsonElement page, string property) => page.GetProperty(property).EnumerateArray().Select(n => n.GetString()!).ToArray();

    /// <summary>A number as the tooltip writes it (3.41e-6, 0.0123).</summary>
    static readonly Regex Value = new(@"\d(\.\d+)?(e-?\d+)?");

    [Fact]
    public void The_static_page_opens_offline_shows_the_last_epoch_reads_values_on_hover_and_follows_the_window()
    {
        using var dir = new TempDir();
        var run = ReportTests.PrunedRun(dir, "run");   // 4 epochs, analysed over last:3 (epochs 1..4)
        var report = ThermoProcess.Run(dir.Path, "report", run, "--quiet");
        Assert.True(report.Code == 0, report.Err);
        var page = Path.Combine(run, "report", "index.html");
        var html = File.ReadAllText(page);
        Assert.Contains("<script id=\"thermo-data\" type=\"application/json\">", html);
        Assert.DoesNotContain("<script src=", html);   // the library and the page's script inlined
        Assert.DoesNotContain("<link rel=\"stylesheet\" href=", html);
        var data = JsonDocument.Parse(Regex.Match(html, "<script id=\"thermo-data\" type=\"application/json\">(.*?)</script>", RegexOptions.Singleline).Groups[1].Value).RootElement;
        var payload = data.GetProperty("runs")[0];
        Assert.Equal(4, payload.GetProperty("last_epoch").GetInt32());
        Assert.Equal(4, payload.GetProperty("units").GetProperty("conv1").GetInt32());
        Assert.Equal([2, 3, 4], payload.GetProperty("layer_temperature").GetProperty("conv1").GetProperty("epoch").EnumerateArray().Select(e => e.GetInt32()));
        var window = data.GetProperty("windows").GetProperty("0");
        Assert.Equal((1, 4), (window.GetProperty("from").GetInt32(), window.GetProperty("to").GetInt32()));
        var conv1 = window.GetProperty("layers").GetProperty("conv1");
        Assert.Equal(4, conv1.GetProperty("units").GetProperty("conv1").GetProperty("rank").GetArrayLength());
        Assert.True(conv1.GetProperty("msd").GetProperty("lag").GetArrayLength() >= 2);

        var checkedPage = Drive(page, dir["page.png"], "--window", "2:4");
        NoErrors(checkedPage);
        Assert.Equal(1, checkedPage.GetProperty("loads").GetInt32());
        Assert.Equal("4", checkedPage.GetProperty("epochCount").GetString());
        var tooltip = checkedPage.GetProperty("tooltip").GetString()!;
        Assert.Contains("epoch", tooltip);
        Assert.Contains("conv1", tooltip);
        Assert.Matches(Value, tooltip.Split("conv1")[1]);
        // the analysed window's drift and oscillation, then the chosen window's T from T(e)
        var before = checkedPage.GetProperty("windowBefore").ToString();
        var after = checkedPage.GetProperty("windowAfter").ToString();
        Assert.NotEqual(before, after);
        Assert.Contains("T_drift", before);
        Assert.Contains("drift and oscillation need the weights", checkedPage.GetProperty("windowNote").GetString());
    }

    [Fact]
    public void A_report_of_two_runs_overlays_them_and_a_toggle_hides_one()
    {
        using var dir = new TempDir();
        var a = ReportTests.PrunedRun(dir, "a", 1);
        var b = ReportTests.PrunedRun(dir, "b", 2);
        var report = ThermoProcess.Run(dir.Path, "report", a, b, "--out", dir["both"], "--quiet");
        Assert.True(report.Code == 0, report.Err);
        var page = Drive(Path.Combine(dir["both"], "index.html"), dir["both.png"], "--toggle", "a");
        NoErrors(page);
        Assert.Equal(["a", "b"], Names(page, "runs"));
        var before = Names(page, "seriesBefore");
        var after = Names(page, "seriesAfter");
        Assert.Contains(before, n => n.StartsWith("a "));
        Assert.Contains(before, n => n.StartsWith("b "));
        Assert.DoesNotContain(after, n => n.StartsWith("a "));
        Assert.Contains(after, n => n.StartsWith("b "));
        Assert.DoesNotContain(Names(page, "lossSeriesAfter"), n => n.StartsWith("a "));
    }

    /// <summary>Starts <c>thermo watch</c> on runs and returns it with the URL from its <c>{"url": …}</c> line.</summary>
    static (Process Watch, string Url) Watch(string artifacts, params string[] runs)
    {
        var watch = Process.Start(ThermoProcess.StartInfo(artifacts, ["watch", .. runs, "--port", "0", "--json"]))!;
        _ = watch.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (DateTime.UtcNow < deadline)
        {
            var line = watch.StandardOutput.ReadLine();
            if (line is null) break;
            try
            {
                if (JsonDocument.Parse(line).RootElement.TryGetProperty("url", out var url)) return (watch, url.GetString()!);
            }
            catch (JsonException) { }
        }
        watch.Kill(true);
        throw new InvalidOperationException("thermo watch printed no {\"url\": …} line");
    }

    /// <remarks>
    /// The training is paced by the test, not by the machine: its first epochs are trained before the
    /// page opens, and it is resumed to its last epoch only once the page has drawn them (the browser
    /// script's --ready file), so the count must grow while the page is open however slowly Chromium starts.
    /// </remarks>
    [WatchFact]
    public void Live_the_page_follows_a_training_to_its_last_epoch_without_a_reload()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 1024, 256);
        const int first = 3, epochs = 10;
        var begun = ThermoProcess.Run(dir.Path, "train", "--data-dir", data, "--epochs", $"{first}", "--widths", "4,4,8,8", "--threads", "1", "--out", dir["run"], "--quiet");
        Assert.True(begun.Code == 0, begun.Err);
        var (watch, url) = Watch(dir.Path, dir["run"]);
        using (watch)
        {
            Process? train = null;
            try
            {
                var ready = dir["ready"];
                var drive = Task.Run(() => Drive(url, dir["live.png"], "--ready", ready, "--wait-epoch", $"{epochs}", "--timeout", "150"));
                var deadline = DateTime.UtcNow.AddMinutes(2);
                while (!File.Exists(ready) && !drive.IsCompleted && DateTime.UtcNow < deadline) Thread.Sleep(50);
                Assert.True(File.Exists(ready), "the page never drew its first epochs");
                train = Process.Start(ThermoProcess.StartInfo(dir.Path, "train", "--resume", dir["run"], "--epochs", $"{epochs}", "--quiet"))!;
                var trainErr = train.StandardError.ReadToEndAsync();
                _ = train.StandardOutput.ReadToEndAsync();
                var page = drive.GetAwaiter().GetResult();
                Assert.True(train.WaitForExit(TimeSpan.FromMinutes(3)), "the training did not finish");
                Assert.True(train.ExitCode == 0, trainErr.GetAwaiter().GetResult());
                NoErrors(page);
                Assert.Equal($"{epochs}", page.GetProperty("epochCount").GetString());
                Assert.Equal(1, page.GetProperty("loads").GetInt32());   // no reload
                var seen = Names(page, "epochsSeen").Select(int.Parse).ToArray();
                Assert.True(seen[0] == first && seen.Length >= 2, $"#epoch-count did not grow from {first} while the page was open: {string.Join(", ", seen)}");
                Assert.Matches(Value, page.GetProperty("tooltip").GetString()!);
            }
            finally
            {
                watch.Kill(true);
                if (train is { HasExited: false }) train.Kill(true);
                train?.Dispose();
            }
        }
    }

    [WatchFact]
    public void Live_two_runs_of_a_reproduction_are_overlaid_and_a_toggle_hides_one()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        foreach (var (seed, name) in new[] { (1L, "repro/seed-1"), (2L, "repro/seed-2") })
            using (var run = TrainingRun.Start(TinyData.QuickConfig(data, 4) with { Seed = seed }, dir[name], dir.Path, new SilentProgress())) run.Run();
        var (watch, url) = Watch(dir.Path, dir["repro/seed-1"], dir["repro/seed-2"]);
        using (watch)
        {
            try
            {
                var page = Drive(url, dir["live-two.png"], "--wait-epoch", "4", "--toggle", "seed-1");
                NoErrors(page);
                Assert.Equal(["seed-1", "seed-2"], Names(page, "runs"));
                Assert.Contains(Names(page, "seriesBefore"), n => n.StartsWith("seed-1 "));
                Assert.DoesNotContain(Names(page, "seriesAfter"), n => n.StartsWith("seed-1 "));
                Assert.Contains(Names(page, "seriesAfter"), n => n.StartsWith("seed-2 "));
            }
            finally { watch.Kill(true); }
        }
    }
}
