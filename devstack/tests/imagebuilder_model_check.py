"""Drives kiln's local Image Builder with boto3 and the AWS CLI (v1) and checks every
answer against botocore's service model (botocore/data/imagebuilder/*/service-2.json):
required members present, every member known to the model and of the model's type, no
null members, enum values from the model, no nextToken on last pages, the
x-amzn-RequestId header, and error codes with the HTTP status of their error shape.

    python imagebuilder_model_check.py http://127.0.0.1:PORT

Prints one PASS/FAIL line per check and exits 1 if any failed. Run by
devstack/tests/devstack_imagebuilder_model.rs with the project's .venv.
"""

import json
import os
import subprocess
import sys
import time

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = sys.argv[1]
REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDS = {"aws_access_key_id": "kilnlocal", "aws_secret_access_key": "kilnlocal"}

MODEL = botocore.session.get_session().get_service_model("imagebuilder")
FAILURES = []
CHECKS = 0


def check(name, ok, detail=""):
    global CHECKS
    CHECKS += 1
    if ok:
        print(f"PASS {name}")
    else:
        FAILURES.append(name)
        print(f"FAIL {name}: {detail}")


def shape_problems(shape, value, path):
    """Where `value` (raw JSON) disagrees with the model's `shape`."""
    out = []
    if value is None:
        return [f"{path}: null"]
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, want object"]
        for req in shape.required_members:
            if req not in value:
                out.append(f"{path}.{req}: required member missing")
        for k, v in value.items():
            member = shape.members.get(k)
            if member is None:
                out.append(f"{path}.{k}: not a member of {shape.name}")
            else:
                out += shape_problems(member, v, f"{path}.{k}")
    elif t == "list":
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, want array"]
        for i, item in enumerate(value):
            out += shape_problems(shape.member, item, f"{path}[{i}]")
    elif t == "map":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, want object"]
        for k, v in value.items():
            out += shape_problems(shape.value, v, f"{path}.{k}")
    elif t == "string":
        if not isinstance(value, str):
            return [f"{path}: {type(value).__name__}, want string"]
        if shape.enum and value not in shape.enum:
            out.append(f"{path}: {value!r} not in {shape.enum}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{path}: {value!r}, want {t}")
        elif "min" in shape.metadata and value < shape.metadata["min"]:
            out.append(f"{path}: {value} < min {shape.metadata['min']}")
        elif "max" in shape.metadata and value > shape.metadata["max"]:
            out.append(f"{path}: {value} > max {shape.metadata['max']}")
    elif t == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: {value!r}, want boolean")
    elif t == "timestamp":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            out.append(f"{path}: {value!r}, want timestamp")
    return out


# Raw answers, captured before botocore parses (and forgives) them.
RAW = {}


def capture(http_response, model, **_):
    RAW[model.name] = http_response


session = boto3.session.Session(region_name=REGION, **CREDS)
ib = session.client(
    "imagebuilder",
    endpoint_url=ENDPOINT,
    config=Config(retries={"max_attempts": 1}),
)
ib.meta.events.register("after-call.imagebuilder.*", capture)


def call(op, **params):
    """Calls `op` through boto3 and checks the raw answer against its output shape."""
    method = getattr(ib, botocore.xform_name(op))
    result = method(**params)
    raw = RAW[op]
    body = json.loads(raw.content or b"{}")
    problems = shape_problems(MODEL.operation_model(op).output_shape, body, op)
    check(f"{op}: output matches the model", not problems, "; ".join(problems))
    check(
        f"{op}: x-amzn-RequestId header",
        bool(raw.headers.get("x-amzn-RequestId")),
        dict(raw.headers),
    )
    return body, result


def expect_error(label, op, code, **params):
    """Calls `op`, expecting the error `code` with its model status (and the header)."""
    try:
        getattr(ib, botocore.xform_name(op))(**params)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        want_status = MODEL.shape_for(code).metadata["error"]["httpStatusCode"]
        check(
            f"{label}: {code} {want_status}",
            (got, status) == (code, want_status),
            f"got {got} {status}",
        )
        check(
            f"{label}: x-amzn-RequestId on the error",
            bool(e.response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")),
        )
        return
    check(f"{label}: {code}", False, "the call succeeded")


def pages(op, list_member, **params):
    """Every page with maxResults=1: nextToken on all but the last, absent there."""
    items, token, n = [], None, 0
    while True:
        p = dict(params, maxResults=1)
        if token:
            p["nextToken"] = token
        body, _ = call(op, **p)
        items += body.get(list_member, [])
        n += 1
        token = body.get("nextToken")
        if not token or n > 50:
            break
    check(f"{op}: pagination ends without nextToken", "nextToken" not in body and n <= 50)
    return items


# --- resources -----------------------------------------------------------------------
parent = f"arn:aws:imagebuilder:{REGION}:aws:image/ubuntu-server-22-lts-x86/x.x.x"
component = f"arn:aws:imagebuilder:{REGION}:aws:component/update-linux/x.x.x"
recipes = []
for version in ("1.0.0", "1.1.0"):
    body, _ = call(
        "CreateImageRecipe",
        name="model-check",
        semanticVersion=version,
        parentImage=parent,
        components=[{"componentArn": component}],
    )
    recipes.append(body["imageRecipeArn"])
expect_error(
    "CreateImageRecipe twice",
    "CreateImageRecipe",
    "ResourceAlreadyExistsException",
    name="model-check",
    semanticVersion="1.0.0",
    parentImage=parent,
    components=[{"componentArn": component}],
)
infra, _ = call(
    "CreateInfrastructureConfiguration",
    name="model-check-infra",
    instanceProfileName="kiln-image-builder",
    instanceTypes=["m7i.large"],
)
infra = infra["infrastructureConfigurationArn"]
dist, _ = call(
    "CreateDistributionConfiguration",
    name="model-check-dist",
    distributions=[
        {"region": REGION, "amiDistributionConfiguration": {"amiTags": {"k": "v"}}},
        {"region": "eu-west-1"},
    ],
)
dist = dist["distributionConfigurationArn"]
pipelines = []
for i, recipe in enumerate(recipes):
    body, _ = call(
        "CreateImagePipeline",
        name=f"model-check-{i}",
        imageRecipeArn=recipe,
        infrastructureConfigurationArn=infra,
        distributionConfigurationArn=dist,
    )
    pipelines.append(body["imagePipelineArn"])
expect_error(
    "CreateImagePipeline twice",
    "CreateImagePipeline",
    "ResourceAlreadyExistsException",
    name="model-check-0",
    imageRecipeArn=recipes[0],
    infrastructureConfigurationArn=infra,
)

body, _ = call("GetImageRecipe", imageRecipeArn=recipes[0])
check(
    "GetImageRecipe: owner is the account id",
    body["imageRecipe"].get("owner") == ACCOUNT,
    body["imageRecipe"].get("owner"),
)
call("GetInfrastructureConfiguration", infrastructureConfigurationArn=infra)
body, _ = call("GetDistributionConfiguration", distributionConfigurationArn=dist)
check(
    "GetDistributionConfiguration: timeoutMinutes",
    isinstance(body["distributionConfiguration"].get("timeoutMinutes"), int),
)
call("GetImagePipeline", imagePipelineArn=pipelines[0])

recipe_list = pages("ListImageRecipes", "imageRecipeSummaryList")
check("ListImageRecipes: both versions", len(recipe_list) == 2, recipe_list)
check(
    "ListImageRecipes: owner is the account id",
    all(r.get("owner") == ACCOUNT for r in recipe_list),
)
body, _ = call("ListImageRecipes", owner="Amazon")
check("ListImageRecipes owner=Amazon: empty", body.get("imageRecipeSummaryList") == [])
body, _ = call(
    "ListImageRecipes", filters=[{"name": "name", "values": ["nope"]}]
)
check("ListImageRecipes name filter", body.get("imageRecipeSummaryList") == [])
check(
    "ListInfrastructureConfigurations",
    len(pages("ListInfrastructureConfigurations", "infrastructureConfigurationSummaryList"))
    == 1,
)
dists = pages("ListDistributionConfigurations", "distributionConfigurationSummaryList")
check(
    "ListDistributionConfigurations: regions",
    len(dists) == 1 and dists[0].get("regions") == [REGION, "eu-west-1"],
    dists,
)
check("ListImagePipelines", len(pages("ListImagePipelines", "imagePipelineList")) == 2)

# --- builds --------------------------------------------------------------------------
builds = []
for pipeline in pipelines + [pipelines[0]]:
    body, _ = call("StartImagePipelineExecution", imagePipelineArn=pipeline)
    builds.append(body["imageBuildVersionArn"])
deadline = time.time() + 60
states = {}
while time.time() < deadline:
    states = {
        b: ib.get_image(imageBuildVersionArn=b)["image"]["state"]["status"] for b in builds
    }
    if all(s == "AVAILABLE" for s in states.values()):
        break
    time.sleep(0.2)
check("builds reach AVAILABLE", all(s == "AVAILABLE" for s in states.values()), states)
for b in builds:
    body, _ = call("GetImage", imageBuildVersionArn=b)

images = pages("ListImagePipelineImages", "imageSummaryList", imagePipelineArn=pipelines[0])
check("ListImagePipelineImages: two builds", len(images) == 2, images)
versions = pages("ListImages", "imageVersionList")
check(
    "ListImages: one entry per version",
    sorted(v["version"] for v in versions) == ["1.0.0", "1.1.0"],
    versions,
)
body, _ = call("ListImages", byName=True)
by_name = body.get("imageVersionList", [])
check(
    "ListImages byName: one x.x.x entry",
    len(by_name) == 1 and by_name[0]["arn"].endswith("/model-check/x.x.x"),
    by_name,
)
version_arn = recipes[0].replace(":image-recipe/", ":image/")
build_versions = pages("ListImageBuildVersions", "imageSummaryList", imageVersionArn=version_arn)
check("ListImageBuildVersions: builds of 1.0.0", len(build_versions) == 2, build_versions)
body, _ = call(
    "ListImageBuildVersions", imageVersionArn=version_arn.replace("model-check", "nothing")
)
check("ListImageBuildVersions: unknown version is empty", body.get("imageSummaryList") == [])
check(
    "ListImageBuildVersions: all builds",
    len(pages("ListImageBuildVersions", "imageSummaryList")) == 3,
)

name_arn = version_arn.rsplit("/", 1)[0]
for wildcard, want in (("x.x.x", "1.1.0/1"), ("1.0.x", "1.0.0/2"), ("1.0.0", "1.0.0/2")):
    body, _ = call("GetImage", imageBuildVersionArn=f"{name_arn}/{wildcard}")
    got = body["image"]["version"]
    check(f"GetImage {wildcard}: newest AVAILABLE match", got == want, got)

# --- errors --------------------------------------------------------------------------
expect_error(
    "GetImage malformed ARN",
    "GetImage",
    "InvalidParameterValueException",
    imageBuildVersionArn="not-an-arn",
)
expect_error(
    "GetImagePipeline malformed ARN",
    "GetImagePipeline",
    "InvalidParameterValueException",
    imagePipelineArn=f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/Not Lower",
)
expect_error(
    "ListImageBuildVersions wildcard ARN",
    "ListImageBuildVersions",
    "InvalidParameterValueException",
    imageVersionArn=f"{name_arn}/x.x.x",
)
expect_error(
    "GetImage unknown build",
    "GetImage",
    "ResourceNotFoundException",
    imageBuildVersionArn=f"{name_arn}/9.9.9/1",
)
expect_error(
    "ListImagePipelineImages bad token",
    "ListImagePipelineImages",
    "InvalidPaginationTokenException",
    imagePipelineArn=pipelines[0],
    nextToken="garbage",
)
expect_error(
    "CancelImageCreation of an AVAILABLE build",
    "CancelImageCreation",
    "ResourceInUseException",
    imageBuildVersionArn=builds[0],
)

# --- the AWS CLI (v1) -----------------------------------------------------------------
AWS = os.path.join(os.path.dirname(sys.executable), "aws")
ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="kilnlocal",
    AWS_SECRET_ACCESS_KEY="kilnlocal",
    AWS_DEFAULT_REGION=REGION,
    AWS_EC2_METADATA_DISABLED="true",
    AWS_PAGER="",
)


def cli(*args):
    p = subprocess.run(
        [AWS, "imagebuilder", *args, "--endpoint-url", ENDPOINT, "--output", "json"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return p.returncode, p.stdout, p.stderr


# The CLI paginates by itself (--page-size 1): it must stop at the last page.
for command, member, want in (
    (["list-image-pipeline-images", "--image-pipeline-arn", pipelines[0]], "imageSummaryList", 2),
    (["list-images"], "imageVersionList", 2),
    (["list-image-build-versions"], "imageSummaryList", 3),
    (["list-image-recipes"], "imageRecipeSummaryList", 2),
    (["list-infrastructure-configurations"], "infrastructureConfigurationSummaryList", 1),
    (["list-distribution-configurations"], "distributionConfigurationSummaryList", 1),
    (["list-image-pipelines"], "imagePipelineList", 2),
):
    code, out, err = cli(*command, "--page-size", "1")
    got = len(json.loads(out).get(member, [])) if code == 0 else None
    check(f"aws imagebuilder {command[0]}", (code, got) == (0, want), f"exit {code}, {got} items; {err}")
for command in (
    ["get-image", "--image-build-version-arn", f"{name_arn}/x.x.x"],
    ["get-image-recipe", "--image-recipe-arn", recipes[0]],
    ["get-distribution-configuration", "--distribution-configuration-arn", dist],
    ["get-infrastructure-configuration", "--infrastructure-configuration-arn", infra],
    ["get-image-pipeline", "--image-pipeline-arn", pipelines[0]],
):
    code, out, err = cli(*command)
    check(f"aws imagebuilder {command[0]}", code == 0 and "requestId" in out, f"exit {code}: {err}")
code, _, err = cli("get-image", "--image-build-version-arn", "not-an-arn")
check(
    "aws imagebuilder get-image malformed ARN",
    code != 0 and "InvalidParameterValueException" in err,
    f"exit {code}: {err}",
)
code, _, err = cli(
    "create-image-recipe",
    "--name", "model-check",
    "--semantic-version", "1.0.0",
    "--parent-image", parent,
    "--components", f"componentArn={component}",
)
check(
    "aws imagebuilder create-image-recipe twice",
    code != 0 and "ResourceAlreadyExistsException" in err,
    f"exit {code}: {err}",
)

print(f"{CHECKS - len(FAILURES)} of {CHECKS} checks passed")
sys.exit(1 if FAILURES else 0)
