using System.CommandLine;
using System.Globalization;
using Thermo.Trainer;

namespace Thermo.Cli;

/// <summary>Parsing shared by the verbs: comma-separated lists, and the one equilibrium-window flag.</summary>
public static class Flags
{
    /// <summary>Items of a comma-separated list (null when not given).</summary>
    public static string[]? List(string? text) =>
        string.IsNullOrWhiteSpace(text) ? null : text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Integers of a comma-separated list (null when not given).</summary>
    public static int[]? Ints(string flag, string? text) =>
        List(text)?.Select(s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v : throw new ThermoException($"{flag}: '{s}' is not an integer")).ToArray();

    /// <summary>Numbers of a comma-separated list (null when not given).</summary>
    public static double[]? Doubles(string flag, string? text) =>
        List(text)?.Select(s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
            ? v : throw new ThermoException($"{flag}: '{s}' is not a number")).ToArray();
}

/// <summary>
/// The equilibrium window, spelled <c>--window</c> by every verb (auto, last:N or a:b; verbs that
/// only take the last N epochs say so). Older spellings — <c>--analyze</c> in prune, <c>--equilibrium N</c>
/// in reproduce and sweep — still work as hidden aliases for one release; giving both is an error.
/// </summary>
public sealed class WindowFlag
{
    readonly Option<string> window;
    readonly Option<string>? legacy;
    readonly bool legacyIsCount;

    /// <summary>Adds <c>--window</c> (and the hidden <paramref name="legacyName"/>) to <paramref name="command"/>.</summary>
    /// <param name="command">The verb.</param>
    /// <param name="description">Help text of --window in this verb.</param>
    /// <param name="defaultValue">The window when none is given (null: none).</param>
    /// <param name="legacyName">The verb's old spelling, kept hidden (null: none).</param>
    /// <param name="legacyIsCount">The old flag took N of last:N rather than a window.</param>
    public WindowFlag(Command command, string description, string? defaultValue, string? legacyName = null, bool legacyIsCount = false)
    {
        window = new Option<string>("--window") { Description = description };
        if (defaultValue is not null) window.DefaultValueFactory = _ => defaultValue;
        command.Options.Add(window);
        if (legacyName is not null)
        {
            legacy = new Option<string>(legacyName) { Description = $"Old spelling of --window{(legacyIsCount ? " last:N" : "")}", Hidden = true };
            command.Options.Add(legacy);
        }
        this.legacyIsCount = legacyIsCount;
    }

    /// <summary>Whether the user gave the window (in either spelling).</summary>
    public bool Given(ParseResult parse) =>
        parse.GetResult(window) is { Implicit: false } || (legacy is not null && parse.GetResult(legacy) is { Implicit: false });

    /// <summary>The window text: --window's, else the old flag's (as last:N when it took a count), else the default.</summary>
    public string? Value(ParseResult parse)
    {
        bool windowGiven = parse.GetResult(window) is { Implicit: false };
        if (legacy is not null && parse.GetResult(legacy) is { Implicit: false })
        {
            if (windowGiven) throw new ThermoException($"--window: also given as {legacy.Name}; give one");
            var old = parse.GetValue(legacy)!;
            return legacyIsCount ? $"last:{old}" : old;
        }
        return parse.GetValue(window);
    }

    /// <summary>N of a last:N window (the only form the protocols take); null when not given and no default.</summary>
    public int? LastEpochs(ParseResult parse)
    {
        var text = Value(parse);
        if (text is null) return null;
        // The library's parser is the one that reads windows; this verb takes only its last:N form.
        if (Thermo.Analysis.Analyzer.TryParseLast(text) is int n) return n;
        throw new ThermoException($"--window: '{text}' is not last:N with N ≥ 1 (this verb takes the last N epochs)");
    }
}
