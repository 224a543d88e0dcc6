"""infra/: the SAM template lints clean and is wired as designed; package.py's pure parts.

The template is read with a small ruamel constructor for CloudFormation's short tags, and
the parts that compute something (conditions, the invoke policy's Resource, GATEWAY_CONFIG)
are evaluated for given parameters by `Stack`, a tiny interpreter of the few intrinsic
functions the template uses.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from gateway.config.load import parse_config

INFRA = Path(__file__).resolve().parents[1] / "infra"
TEMPLATE_PATH = INFRA / "template.yaml"
REQUIRED = {
    "VpcId": "vpc-0123456789abcdef0",
    "PublicSubnetIds": "subnet-0a,subnet-0b",
    "PrivateSubnetIds": "subnet-1a,subnet-1b",
    "UpstreamCidr": "10.20.0.0/16",
    "CertificateArn": "arn:aws:acm:eu-central-1:123456789012:certificate/abc",
}
BILLING = "arn:aws:lambda:eu-central-1:123456789012:function:billing"
ORDERS = "arn:aws:lambda:eu-central-1:123456789012:function:orders-v2"


def _cfn_tag(constructor: SafeConstructor, suffix: str, node: Node) -> dict[str, Any]:
    name = {"Ref": "Ref", "Condition": "Condition"}.get(suffix, f"Fn::{suffix}")
    if isinstance(node, MappingNode):
        return {name: constructor.construct_mapping(node, deep=True)}
    if isinstance(node, SequenceNode):
        return {name: constructor.construct_sequence(node, deep=True)}
    value = constructor.construct_scalar(node)
    return {name: value.split(".", 1) if name == "Fn::GetAtt" else value}


def load_template() -> dict[str, Any]:
    yaml = YAML(typ="safe", pure=True)
    yaml.constructor.add_multi_constructor("!", _cfn_tag)
    template: dict[str, Any] = yaml.load(TEMPLATE_PATH)
    return template


def load_package() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_package", INFRA / "package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PACKAGE = load_package()
NO_VALUE = object()


class Stack:
    """The template's conditions and computed values under given parameter values."""

    def __init__(self, **overrides: str) -> None:
        self.params: dict[str, Any] = {
            "AWS::Region": "eu-central-1",
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "AWS::StackName": "gateway",
            "AWS::NoValue": NO_VALUE,
        }
        for name, spec in TEMPLATE["Parameters"].items():
            value = str(overrides.get(name, REQUIRED.get(name, spec.get("Default", ""))))
            list_type = spec["Type"] == "CommaDelimitedList" or spec["Type"].startswith("List<")
            self.params[name] = value.split(",") if list_type else value

    def condition(self, name: str) -> bool:
        return bool(self.value(TEMPLATE["Conditions"][name]))

    def creates(self, resource: str) -> bool:
        condition = RESOURCES[resource].get("Condition")
        return condition is None or self.condition(condition)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in map(self.value, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            [(key, arg)] = node.items()
            if key in ("Ref", "Condition") or key.startswith("Fn::"):
                return self._function(key, arg)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _function(self, key: str, arg: Any) -> Any:  # noqa: PLR0911 (one per function)
        match key:
            case "Ref":
                return self.params.get(arg, {"Ref": arg})  # a resource stays opaque
            case "Condition":
                return self.condition(arg)
            case "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            case "Fn::Equals":
                return str(self.value(arg[0])) == str(self.value(arg[1]))
            case "Fn::Not":
                return not self.value(arg[0])
            case "Fn::And":
                return all(self.value(arg))
            case "Fn::Or":
                return any(self.value(arg))
            case "Fn::Join":
                return arg[0].join(self.value(arg[1]))
            case "Fn::Split":
                return self.value(arg[1]).split(arg[0])
            case "Fn::Select":
                return self.value(arg[1])[int(arg[0])]
            case "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else arg
                scope = {**self.params, **{k: self.value(v) for k, v in names.items()}}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(scope[m.group(1)]), text)
        return {key: arg}  # GetAtt and the like: opaque


def statements(stack: Stack) -> dict[str, dict[str, Any]]:
    [policy] = stack.value(RESOURCES["GatewayRole"]["Properties"]["Policies"])
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Ref" in node:
            yield node["Ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


# --- The template ----------------------------------------------------------------------------


def test_template_passes_cfn_lint() -> None:
    api = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed (dev extra)")
    # GIVEN the template, WHEN cfn-lint checks it as `cfn-lint infra/template.yaml` would
    matches = api.lint_file(TEMPLATE_PATH)
    # THEN it finds nothing
    assert [str(match) for match in matches] == []


def test_https_listener_forwards_to_the_gateway_target_group() -> None:
    # GIVEN the HTTPS listener
    listener = RESOURCES["HttpsListener"]["Properties"]
    # THEN it serves the certificate parameter and forwards everything to the target group
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    assert listener["LoadBalancerArn"] == {"Ref": "LoadBalancer"}
    assert listener["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert listener["DefaultActions"] == [
        {"Type": "forward", "TargetGroupArn": {"Ref": "GatewayTargetGroup"}}
    ]


def https_action(path: str) -> dict[str, Any]:
    """The action the HTTPS listener takes for `path`: its rules by priority, as the ALB
    evaluates path-pattern conditions (case-sensitive, `*` and `?` wildcards), else default."""
    rules = sorted(
        (
            resource["Properties"]
            for resource in RESOURCES.values()
            if resource["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"
            and resource["Properties"]["ListenerArn"] == {"Ref": "HttpsListener"}
        ),
        key=lambda rule: int(rule["Priority"]),
    )
    for rule in rules:
        [condition] = rule["Conditions"]
        assert condition["Field"] == "path-pattern"
        patterns = condition["PathPatternConfig"]["Values"]
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns):
            [action] = rule["Actions"]
            return dict(action)
    [default] = RESOURCES["HttpsListener"]["Properties"]["DefaultActions"]
    return dict(default)


@pytest.mark.parametrize(
    ("path", "forwarded"),
    [
        pytest.param("/_gateway/health", True, id="health"),
        pytest.param("/orders/1", True, id="app-path"),
        pytest.param("/_gatewayish", True, id="lookalike-prefix"),
        pytest.param("/_gateway/routes", False, id="routes"),
        pytest.param("/_gateway/metrics", False, id="metrics"),
        pytest.param("/_gateway/docs", False, id="docs"),
        pytest.param("/_gateway/openapi.json", False, id="openapi"),
        pytest.param("/_gateway/health/x", False, id="below-health"),
        pytest.param("/_gateway", False, id="bare-prefix"),
    ],
)
def test_admin_api_is_off_the_public_listener(path: str, forwarded: bool) -> None:
    # GIVEN the HTTPS listener's rules and default action
    # WHEN a request for `path` arrives
    action = https_action(path)
    # THEN only health (and the application's own paths) reach the gateway; the rest of
    # /_gateway gets a fixed 404 from the ALB itself
    if forwarded:
        assert action == {"Type": "forward", "TargetGroupArn": {"Ref": "GatewayTargetGroup"}}
    else:
        assert action["Type"] == "fixed-response"
        assert action["FixedResponseConfig"]["StatusCode"] == "404"


def test_http_listener_redirects_to_https() -> None:
    # GIVEN the HTTP listener
    listener = RESOURCES["HttpListener"]["Properties"]
    [action] = listener["DefaultActions"]
    # THEN port 80 answers a permanent redirect to the same URL over HTTPS
    assert (listener["Port"], listener["Protocol"], action["Type"]) == (80, "HTTP", "redirect")
    assert action["RedirectConfig"]["Protocol"] == "HTTPS"
    assert action["RedirectConfig"]["Port"] == "443"
    assert action["RedirectConfig"]["StatusCode"] == "HTTP_301"


def test_target_group_sends_multi_value_events_to_the_live_alias() -> None:
    # GIVEN the target group and the function
    group = RESOURCES["GatewayTargetGroup"]
    function = RESOURCES["GatewayFunction"]["Properties"]
    attributes = {a["Key"]: a["Value"] for a in group["Properties"]["TargetGroupAttributes"]}
    # THEN its one target is the alias SAM publishes, never the unqualified function
    assert group["Properties"]["TargetType"] == "lambda"
    assert attributes["lambda.multi_value_headers.enabled"] == "true"
    assert function["AutoPublishAlias"] == "live"
    assert group["Properties"]["Targets"] == [{"Id": {"Ref": "GatewayFunction.Alias"}}]
    # AND the ALB is allowed to invoke that alias before the group registers it
    permission = RESOURCES["GatewayInvokePermission"]["Properties"]
    assert group["DependsOn"] == "GatewayInvokePermission"
    assert permission["FunctionName"] == {"Ref": "GatewayFunction.Alias"}
    assert permission["Principal"] == "elasticloadbalancing.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"


def test_function_runs_what_package_py_builds() -> None:
    # GIVEN the function and package.py's build settings
    function = RESOURCES["GatewayFunction"]["Properties"]
    # THEN the runtime, architecture and code are the ones the zip is built for and at
    assert function["Handler"] == "gateway.lambda_handler.handler"
    assert function["Runtime"] == f"python{PACKAGE.PYTHON_VERSION}"
    assert function["Architectures"] == ["arm64"]
    assert all(platform.endswith("_aarch64") for platform in PACKAGE.PLATFORMS)
    assert (INFRA / function["CodeUri"]).resolve() == PACKAGE.parse_args([]).out
    assert function["Tracing"] == "Active"
    assert set(function["Environment"]["Variables"]) == {
        "GATEWAY_CONFIG",
        "GATEWAY_CONFIG_TTL",
        "OTEL_SERVICE_NAME",
        "GATEWAY_REDIS_URL",  # only with SharedStateCache (AWS::NoValue otherwise)
        "GATEWAY_SHADOW_SECRET",  # only with ShadowSecret (AWS::NoValue otherwise)
    }


def test_function_is_in_the_private_subnets_behind_its_security_group() -> None:
    # GIVEN the function's VPC config
    vpc = RESOURCES["GatewayFunction"]["Properties"]["VpcConfig"]
    # THEN it runs in the private subnets, in the gateway's own security group
    assert vpc == {
        "SubnetIds": {"Ref": "PrivateSubnetIds"},
        "SecurityGroupIds": [{"Ref": "GatewaySecurityGroup"}],
    }


@pytest.mark.parametrize(
    "arns", [[BILLING], [BILLING, ORDERS]], ids=["one-function", "two-functions"]
)
def test_role_invokes_only_the_new_service_functions(arns: list[str]) -> None:
    # GIVEN NewServiceFunctionArns as package.py prints it
    stack = Stack(NewServiceFunctionArns=",".join(arns))
    # WHEN the role's policy is evaluated
    policy = statements(stack)
    invoking = [s for s in policy.values() if "lambda:InvokeFunction" in str(s["Action"])]
    # THEN one statement invokes, those functions and their versions/aliases, and nothing else
    assert [s["Sid"] for s in invoking] == ["InvokeNewServiceFunctions"]
    assert sorted(invoking[0]["Resource"]) == sorted([*arns, *(f"{arn}:*" for arn in arns)])
    raw = next(s for s in _raw_statements() if "InvokeNewServiceFunctions" in str(s))
    assert set(refs(raw)) == {"NewServiceFunctionArns", "AWS::NoValue"}
    # AND "*" is a resource only where AWS has no resource-level permissions
    unscoped = {sid for sid, s in policy.items() if s["Resource"] == "*"}
    assert unscoped == {"WriteTraces", "ManageVpcNetworkInterfaces"}


def test_role_invokes_nothing_without_lambda_targets() -> None:
    # GIVEN no NewServiceFunctionArns (routes.yaml has only HTTP targets)
    # WHEN the role's policy is evaluated
    policy = statements(Stack())
    # THEN it grants no invoke, and no config read either
    assert set(policy) == {"WriteOwnLogs", "WriteTraces", "ManageVpcNetworkInterfaces"}


@pytest.mark.parametrize(
    ("overrides", "config", "sid", "resource"),
    [
        ({}, "routes.yaml", None, None),
        (
            {"ConfigBucket": "acme-gateway", "ConfigKey": "prod/routes.yaml"},
            "s3://acme-gateway/prod/routes.yaml",
            "ReadRouteTableFromS3",
            "arn:aws:s3:::acme-gateway/prod/routes.yaml",
        ),
        (
            {"ConfigParameterName": "/gateway/routes"},
            "ssm:/gateway/routes",
            "ReadRouteTableFromSsm",
            "arn:aws:ssm:eu-central-1:123456789012:parameter/gateway/routes",
        ),
    ],
    ids=["packaged", "s3", "ssm"],
)
def test_config_source_sets_gateway_config_and_may_read_only_it(
    overrides: dict[str, str], config: str, sid: str | None, resource: str | None
) -> None:
    # GIVEN where the route table lives
    stack = Stack(**overrides)
    # WHEN the function's environment and the role are evaluated
    variables = stack.value(RESOURCES["GatewayFunction"]["Properties"]["Environment"])
    policy = statements(stack)
    reads = {k: v for k, v in policy.items() if k.startswith("ReadRouteTable")}
    # THEN GATEWAY_CONFIG names it, and the role may read exactly that object or parameter
    assert variables["Variables"]["GATEWAY_CONFIG"] == config
    assert {k: v["Resource"] for k, v in reads.items()} == ({sid: resource} if sid else {})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, set()),
        ({"NewServiceFunctionArns": BILLING}, {"LambdaEndpoint"}),
        ({"ConfigParameterName": "/gateway/routes"}, {"SsmEndpoint"}),
        ({"ConfigBucket": "acme", "PrivateRouteTableIds": "rtb-1,rtb-2"}, {"S3Endpoint"}),
        (
            {
                "NewServiceFunctionArns": BILLING,
                "ConfigParameterName": "/gateway/routes",
                "CreateVpcEndpoints": "false",
            },
            set(),
        ),
    ],
    ids=["http-only", "lambda-targets", "ssm-config", "s3-config", "endpoints-off"],
)
def test_vpc_endpoints_follow_what_the_gateway_calls(
    overrides: dict[str, str], expected: set[str]
) -> None:
    # GIVEN the parameters of a deployment
    stack = Stack(**overrides)
    # WHEN its conditions are evaluated
    endpoints = ("LambdaEndpoint", "SsmEndpoint", "S3Endpoint")
    created = {name for name in endpoints if stack.creates(name)}
    # THEN exactly the endpoints of the AWS APIs it calls exist, with their security group
    assert created == expected
    assert stack.creates("EndpointSecurityGroup") == bool(created - {"S3Endpoint"})


@pytest.mark.parametrize("name", ["LambdaEndpoint", "SsmEndpoint"], ids=["lambda", "ssm"])
def test_interface_endpoint_serves_the_private_subnets_to_the_gateway(name: str) -> None:
    # GIVEN an interface endpoint and its security group
    endpoint = RESOURCES[name]["Properties"]
    [ingress] = RESOURCES["EndpointSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    service = Stack().value(endpoint["ServiceName"])
    # THEN it answers the API's usual DNS name in the private subnets, on 443, to the gateway
    assert endpoint["VpcEndpointType"] == "Interface"
    assert service == f"com.amazonaws.eu-central-1.{name.removesuffix('Endpoint').lower()}"
    assert endpoint["PrivateDnsEnabled"] is True
    assert endpoint["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    assert endpoint["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
    assert (ingress["FromPort"], ingress["ToPort"]) == (443, 443)
    assert ingress["SourceSecurityGroupId"] == {"Ref": "GatewaySecurityGroup"}


def test_s3_gateway_endpoint_joins_the_private_route_tables() -> None:
    # GIVEN the S3 endpoint
    endpoint = RESOURCES["S3Endpoint"]["Properties"]
    # THEN it is a gateway endpoint on the private subnets' route tables
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert Stack().value(endpoint["ServiceName"]) == "com.amazonaws.eu-central-1.s3"
    assert endpoint["RouteTableIds"] == {"Ref": "PrivateRouteTableIds"}


def test_alarm_watches_the_gateway_target_groups_5xx() -> None:
    # GIVEN the 5xx alarm
    alarm = RESOURCES["Target5xxAlarm"]["Properties"]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}
    group = {"Fn::GetAtt": ["GatewayTargetGroup", "TargetGroupFullName"]}
    # THEN it counts the target group's 5xx answers, and notifies the topic when one is given
    assert stats["errors"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert {"Name": "TargetGroup", "Value": group} in stats["errors"]["Dimensions"]
    assert Stack(AlarmTopicArn="arn:aws:sns:eu-central-1:123456789012:ops").value(
        alarm["AlarmActions"]
    ) == ["arn:aws:sns:eu-central-1:123456789012:ops"]
    assert Stack().value(alarm["AlarmActions"]) is NO_VALUE


def test_outputs_name_the_alb_and_the_alias() -> None:
    # GIVEN the outputs
    outputs = TEMPLATE["Outputs"]
    # THEN they give the ALB's DNS name and the alias's ARN
    assert outputs["AlbDnsName"]["Value"] == {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}
    assert outputs["GatewayAliasArn"]["Value"] == {"Ref": "GatewayFunction.Alias"}


def _raw_statements() -> list[Any]:
    [policy] = RESOURCES["GatewayRole"]["Properties"]["Policies"]
    statements: list[Any] = policy["PolicyDocument"]["Statement"]
    return statements


# --- package.py --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "region", "arn"),
    [
        ("billing", "eu-central-1", BILLING),
        ("billing:live", "eu-central-1", BILLING),
        (f"{ORDERS}:canary", "us-east-1", ORDERS),
        (ORDERS, "us-east-1", ORDERS),
        ("billing", "cn-north-1", "arn:aws-cn:lambda:cn-north-1:123456789012:function:billing"),
    ],
    ids=["name", "name-alias", "qualified-arn", "arn", "china"],
)
def test_function_arn_is_the_unqualified_function(function: str, region: str, arn: str) -> None:
    # GIVEN a routes.yaml `lambda:` value, WHEN package.py turns it into an ARN
    # THEN it is the function's unqualified ARN, in the partition of its region
    assert PACKAGE.function_arn(function, region, "123456789012") == arn


def test_function_arns_cover_every_aws_lambda_target_once() -> None:
    # GIVEN a route table with lambda targets in two regions, twice the same function, and
    # one served by a local Invoke API
    config = parse_config(
        """
targets:
  legacy: {url: "http://10.0.0.1:8080"}
  billing: {lambda: billing}
  billing-live: {lambda: "billing:live"}
  payments: {lambda: payments, region: us-east-1}
  local: {lambda: orders-dev, endpoint_url: "http://127.0.0.1:9001"}
routes:
  - name: all
    path: /
    split: {legacy: 20, billing: 20, billing-live: 20, payments: 20, local: 20}
""",
        "test",
    )
    # WHEN package.py derives NewServiceFunctionArns
    arns = PACKAGE.function_arns(config, "eu-central-1", "123456789012")
    # THEN each AWS function appears once, in its own region; the local one not at all
    assert arns == [BILLING, "arn:aws:lambda:us-east-1:123456789012:function:payments"]


def test_requirements_are_the_runtime_dependencies_only() -> None:
    # WHEN package.py reads pyproject.toml
    names = {re.split(r"[<>=!~\[; ]", spec)[0].lower() for spec in PACKAGE.requirements()}
    # THEN the gateway's runtime dependencies are in, httpx and what Lambda ships are not
    assert {"fastapi", "mangum", "aiohttp", "ruamel.yaml", "opentelemetry-sdk"} <= names
    assert not names & {"httpx", "httpx-aiohttp", "boto3", "botocore", "uvicorn", "pytest"}


def test_missing_imports_tells_cold_start_failures_from_lazy_ones(tmp_path: Path) -> None:
    # GIVEN a package importing modules at module level, lazily and for type checking only
    package = tmp_path / "gateway"
    package.mkdir()
    (package / "core.py").write_text(
        "import json\nimport boto3\nimport present.sub\nimport absent\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import typed_only\n"
        "def later():\n    import exporter\n"
        "try:\n    import optional\nexcept ImportError:\n    optional = None\n"
    )
    site = tmp_path / "site"
    (site / "present").mkdir(parents=True)
    # WHEN package.py looks for them in the site and the runtime
    required, lazy = PACKAGE.missing_imports(package, site)
    # THEN a missing module-level import fails the build, lazy ones are only named
    assert (required, lazy) == (["absent"], ["exporter", "optional"])


def test_zip_is_stripped_and_reproducible(tmp_path: Path) -> None:
    # GIVEN an installed tree with bytecode, tests, stubs, console scripts and pip records
    site = tmp_path / "site"
    files = [
        "lib/__init__.py",
        "lib/__pycache__/core.cpython-311.pyc",
        "lib/tests/test_core.py",
        "lib/core.pyi",
        "lib-1.0.dist-info/METADATA",
        "lib-1.0.dist-info/RECORD",
        "lib-1.0.dist-info/entry_points.txt",
        "bin/lib-cli",
    ]
    for name in files:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(name)
    # WHEN it is stripped and zipped twice
    PACKAGE.strip(site)
    PACKAGE.write_zip(site, tmp_path / "a.zip")
    (site / "lib/__init__.py").touch()
    PACKAGE.write_zip(site, tmp_path / "b.zip")
    # THEN what Lambda needs is kept, the rest gone, and the same tree gives the same bytes
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert sorted(archive.namelist()) == [
            "lib-1.0.dist-info/METADATA",
            "lib-1.0.dist-info/entry_points.txt",
            "lib/__init__.py",
        ]
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


# --- Fleet-wide limits: the shared state cache ---------------------------------------------


def test_state_cache_is_off_by_default_and_the_function_has_no_redis_url() -> None:
    # GIVEN the default parameters
    stack = Stack()
    # WHEN the cache's resources and the function's environment are evaluated
    variables = stack.value(RESOURCES["GatewayFunction"]["Properties"]["Environment"])
    created = [name for name in ("StateCache", "StateCacheSecurityGroup") if stack.creates(name)]
    # THEN nothing is created and every limit stays per instance
    assert created == []
    assert stack.creates("GatewayToStateCache") is False
    assert "GATEWAY_REDIS_URL" not in variables["Variables"]


def test_one_parameter_turns_on_a_tls_valkey_cache_only_the_gateway_reaches() -> None:
    # GIVEN SharedStateCache=true
    stack = Stack(SharedStateCache="true")
    # WHEN the cache, its security group and the function are evaluated
    cache = stack.value(RESOURCES["StateCache"]["Properties"])
    group = stack.value(RESOURCES["StateCacheSecurityGroup"]["Properties"])
    egress = stack.value(RESOURCES["GatewayToStateCache"]["Properties"])
    environment = RESOURCES["GatewayFunction"]["Properties"]["Environment"]["Variables"]
    condition, url, otherwise = environment["GATEWAY_REDIS_URL"]["Fn::If"]
    # THEN a Valkey serverless cache sits in the gateway's private subnets
    assert all(stack.creates(n) for n in ("StateCache", "StateCacheSecurityGroup"))
    assert cache["Engine"] == "valkey"
    assert cache["SubnetIds"] == REQUIRED["PrivateSubnetIds"].split(",")
    assert cache["SecurityGroupIds"] == [{"Ref": "StateCacheSecurityGroup"}]
    # AND only the gateway's security group may reach it, on the cache's ports
    [ingress] = group["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "GatewaySecurityGroup"}
    assert (ingress["FromPort"], ingress["ToPort"]) == (6379, 6380)
    assert "CidrIp" not in ingress
    assert egress["DestinationSecurityGroupId"] == {"Ref": "StateCacheSecurityGroup"}
    # AND the function gets its endpoint as a TLS URL (rediss://), which state: reads
    assert stack.condition(condition)
    assert url == {
        "Fn::Sub": "rediss://${StateCache.Endpoint.Address}:${StateCache.Endpoint.Port}/0"
    }
    assert otherwise == {"Ref": "AWS::NoValue"}


def test_shadow_self_invoke_is_off_by_default() -> None:
    # GIVEN the default parameters (no ShadowSecret)
    stack = Stack()
    # WHEN the function's environment and the role's policy are evaluated
    variables = stack.value(RESOURCES["GatewayFunction"]["Properties"]["Environment"])
    # THEN the function neither holds a shadow secret nor may invoke itself
    assert "GATEWAY_SHADOW_SECRET" not in variables["Variables"]
    assert "InvokeSelfForShadowComparisons" not in statements(stack)


def test_a_shadow_secret_lets_the_gateway_invoke_only_its_own_function() -> None:
    # GIVEN ShadowSecret set (shadow comparisons on Lambda run in an invocation of their own)
    stack = Stack(ShadowSecret="s3cr3t")
    # WHEN the function's environment and the role's policy are evaluated
    variables = stack.value(RESOURCES["GatewayFunction"]["Properties"]["Environment"])
    policy = statements(stack)
    # THEN the function gets the secret, and may invoke only its own function's name prefix
    assert variables["Variables"]["GATEWAY_SHADOW_SECRET"] == "s3cr3t"
    own = policy["InvokeSelfForShadowComparisons"]
    assert own["Action"] == "lambda:InvokeFunction"
    [resource] = own["Resource"]
    assert resource.endswith(":function:gateway-GatewayFunction-*"), resource
