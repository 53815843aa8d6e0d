using Thermo.Trainer.Training;
using Thermo.Trainer;
using System.CommandLine;
using System.Text.Json;

namespace Thermo.Cli;

/// <summary>
/// The options every verb shares: <c>--json</c> (the result as one JSON document on stdout; progress
/// and errors stay on stderr) and <c>--quiet</c> (no progress). Set once per invocation by Program.
/// </summary>
public static class CliOutput
{
    public static readonly Option<bool> JsonOption = new("--json") { Description = "Print the result as one JSON document on stdout (progress stays on stderr)", Recursive = true };
    public static readonly Option<bool> QuietOption = new("--quiet") { Description = "Print no progress on stderr", Recursive = true };

    // Set by Program once per invocation and read only inside the CLI (the verbs, ConsoleProgress):
    // the libraries take an Action<string> for progress and return results, and never look at them.
    internal static bool Json { get; set; }
    internal static bool Quiet { get; set; }

    static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Prints a verb's result: <paramref name="json"/> serialised with --json, else <paramref name="text"/>.</summary>
    public static void Result(object json, Action text)
    {
        if (Json) Console.Out.WriteLine(JsonSerializer.Serialize(json, Options));
        else text();
    }

    /// <summary>With --json, an error is also a JSON document on stdout, so a script reading stdout sees it.</summary>
    public static void Error(string message, int exitCode)
    {
        if (Json) Console.Out.WriteLine(JsonSerializer.Serialize(new { error = message, exit_code = exitCode }, Options));
    }
}
