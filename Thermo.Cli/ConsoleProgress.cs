using Thermo.Trainer;
using Spectre.Console;
using Thermo.Trainer.Training;
using Thermo.Analysis.Run;

namespace Thermo.Cli;

/// <summary>
/// Progress on the console: a live bar per epoch (batches) when stderr is an interactive terminal,
/// otherwise one plain line per epoch. Both show test metrics, throughput and an ETA.
/// </summary>
public sealed class ConsoleProgress : ITrainingProgress, IDisposable
{
    readonly IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
    readonly bool interactive;
    int batches;
    int lastDrawn = -1;
    DateTime lastDraw = DateTime.MinValue;
    string header = "";

    public ConsoleProgress()
    {
        interactive = !Console.IsErrorRedirected && console.Profile.Capabilities.Interactive;
        // One line per epoch, never wrapped at a redirected stream's default 80 columns.
        if (!interactive) console.Profile.Width = 200;
    }

    public void Message(string text)
    {
        if (!CliOutput.Quiet) console.MarkupLine($"[grey]{Markup.Escape(text)}[/]");
    }

    public void EpochStarted(int epoch, int lastEpoch, int batches)
    {
        this.batches = batches;
        header = $"epoch {epoch}/{lastEpoch}";
        lastDrawn = -1;
    }

    public void BatchCompleted(int batch, double loss)
    {
        if (!interactive || CliOutput.Quiet) return;
        var now = DateTime.UtcNow;
        if (batch != batches && (now - lastDraw).TotalMilliseconds < 100) return;
        lastDraw = now;
        int width = 30, filled = (int)((double)batch / batches * width);
        if (filled == lastDrawn && batch != batches) return;
        lastDrawn = filled;
        Console.Error.Write($"\r{header} [{new string('#', filled)}{new string('.', width - filled)}] {batch}/{batches} loss {loss:F4}   ");
    }

    public void EpochCompleted(MetricsRow m, int lastEpoch, TimeSpan? eta)
    {
        if (CliOutput.Quiet) return;
        if (interactive) Console.Error.Write("\r" + new string(' ', 100) + "\r");
        var train = m.Epoch == 0 ? "initialisation" : $"train loss {m.TrainLoss:F4} acc {m.TrainAccuracy:P2}";
        var speed = double.IsNaN(m.ImagesPerSecond) ? "" : $" | {m.ImagesPerSecond:F0} img/s";
        var etaText = eta is { } e ? $" | ETA {e:hh\\:mm\\:ss}" : "";
        console.MarkupLine(Markup.Escape($"epoch {m.Epoch,3}/{lastEpoch} | {train} | test loss {m.TestLoss:F4} acc {m.TestAccuracy:P2}{speed}{etaText}"));
    }

    public void Dispose() { }
}
