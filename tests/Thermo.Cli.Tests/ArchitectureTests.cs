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
}
