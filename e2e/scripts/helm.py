"""Helm (its Go library, through PyPI's helm-sdkpy) for the test suite: one action per run,
its result as JSON on stdout.

    helm.py lint CHART
    helm.py install|upgrade RELEASE CHART --kubeconfig FILE --namespace NS [--values JSON]
    helm.py uninstall RELEASE --kubeconfig FILE --namespace NS

Nothing waits for workloads to become ready: the local control plane runs no pods.
"""

import argparse
import asyncio
import json
import sys

import helm_sdkpy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["lint", "install", "upgrade", "uninstall"])
    parser.add_argument("names", nargs="+", help="RELEASE and/or CHART")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--values", default="{}", help="values as a JSON object")
    args = parser.parse_args()
    config = helm_sdkpy.Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)
    values = json.loads(args.values)
    try:
        if args.action == "lint":
            result = asyncio.run(helm_sdkpy.Lint(config).run(args.names[0]))
        elif args.action == "install":
            release, chart = args.names
            result = asyncio.run(
                helm_sdkpy.Install(config).run(
                    release, chart, values=values, wait=False, disable_openapi_validation=False
                )
            )
        elif args.action == "upgrade":
            release, chart = args.names
            result = asyncio.run(
                # The release gets exactly `values` over the chart's defaults (without
                # reset_values an upgrade with no values would reuse the previous ones).
                helm_sdkpy.Upgrade(config).run(
                    release,
                    chart,
                    values=values,
                    wait=False,
                    disable_openapi_validation=False,
                    reset_values=True,
                )
            )
        else:
            result = asyncio.run(helm_sdkpy.Uninstall(config).run(args.names[0], wait=False))
    except helm_sdkpy.HelmError as error:
        print(f"helm {args.action}: {error}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
