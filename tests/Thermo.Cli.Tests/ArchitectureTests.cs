using System.Xml.Linq;

namespace Thermo.Cli.Tests;

/// <summary>The dependency rule of docs/ARCHITECTURE.md, read from the project files themselves.</summary>
public class ArchitectureTests
{
    static (string[] Projects, string[] Packages) References(string project)
    {
        var root = Repository.Root;
        var file = Directory.GetFiles(Path.Combine(root, project), project + ".*proj").Single();
        var xml = XDocument.Load(file);
        string[] Of(string element) => xml.Descendants(element).Select(e => e.Attribute("Include")!.Value).ToArray();
        return (Of("ProjectReference").Select(p => Path.GetFileNameWithoutExtension(p)).Order().ToArray(), Of("PackageReference"));
    }

    [Theory]
    [InlineData("Thermo.Analysis", new string[0])]
    [InlineData("Thermo.Trainer", new[] { "Thermo.Analysis" })]
    [InlineData("Thermo.Pipeline", new[] { "Thermo.Analysis", "Thermo.Trainer" })]
    [InlineData("Thermo.Cli", new[] { "Thermo.Analysis", "Thermo.Pipeline", "Thermo.Trainer" })]
    public void A_project_depends_only_on_the_projects_above_it_in_the_data_flow(string project, string[] allowed)
    {
        var (projects, _) = References(project);
        Assert.Empty(projects.Except(allowed));
    }

    [Theory]
    [InlineData("Thermo.Analysis")]
    [InlineData("Thermo.Pipeline")]
    [InlineData("Thermo.Cli")]
    public void Only_the_trainer_references_TorchSharp(string project)
    {
        var (_, packages) = References(project);
        Assert.DoesNotContain(packages, p => p.StartsWith("TorchSharp", StringComparison.Ordinal));
        Assert.Contains(References("Thermo.Trainer").Packages, p => p.StartsWith("TorchSharp", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Thermo.Trainer")]
    [InlineData("Thermo.Pipeline")]
    [InlineData("Thermo.Cli")]
    [InlineData("Thermo.Bench")]
    public void CSharp_meets_the_FSharp_core_as_plain_dotnet(string project)
    {
        // F#'s own types and union constructors stay behind the analysis library's face: C# sees
        // arrays, records, struct tuples and the factories CSharp.fs and Column give it.
        var fsharpOnly = new System.Text.RegularExpressions.Regex(@"\b(FSharpOption|FSharpList|FSharpFunc|ListModule|ArrayModule|SeqModule|FuncConvert|Microsoft\.FSharp)\b|\bColumn\.New\w+Column\b");
        var offending = Directory.EnumerateFiles(Path.Combine(Repository.Root, project), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => fsharpOnly.IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(Repository.Root, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offending.Count == 0, string.Join("\n", offending));
    }

    [Theory]
    [InlineData("Thermo.Analysis")]
    [InlineData("Thermo.Trainer")]
    [InlineData("Thermo.Pipeline")]
    public void Library_errors_name_settings_not_flags(string project)
    {
        // Only the CLI words a setting as its flag (SettingFlags); a library error names the setting
        // (SettingException.Related for another one). sbatch's own options are not Thermo's flags.
        var raise = new System.Text.RegularExpressions.Regex(@"(Exception\(|failAt|Errors\.(artifact|setting)|fail )[^;]*""[^""]*--[a-z]");
        var offending = Directory.EnumerateFiles(Path.Combine(Repository.Root, project), "*.*", SearchOption.AllDirectories)
            .Where(f => (f.EndsWith(".cs", StringComparison.Ordinal) || f.EndsWith(".fs", StringComparison.Ordinal))
                && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => raise.IsMatch(x.line) && !x.line.Contains("sbatch", StringComparison.Ordinal))
            .Select(x => $"{Path.GetRelativePath(Repository.Root, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offending.Count == 0, string.Join("\n", offending));
    }
}
