"""Deleting what moto's CloudFormation models create but cannot delete: without these, deleting mlfn's ECS stack
fails on its VPC (moto refuses while route tables remain) and ECS services, load balancer parts and REST APIs
would outlive their stack. `DELETERS` maps a resource type to a function of (resource, account, region);
`cfn_engine` calls it in place of moto's no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.apigateway.models import apigateway_backends
from moto.ec2.models import ec2_backends
from moto.ecs.models import ecs_backends
from moto.elbv2.models import elbv2_backends

Deleter = Callable[[Any, str, str], None]


def _route_table_association(resource: Any, account: str, region: str) -> None:
    ec2 = ec2_backends[account][region]
    table = ec2.get_route_table(resource.route_table_id)
    for association_id, subnet in list(table._associations.items()):
        if subnet == resource.subnet_id:
            ec2.disassociate_route_table(association_id)


def _route(resource: Any, account: str, region: str) -> None:
    ec2_backends[account][region].delete_route(
        resource.route_table.id, resource.destination_cidr_block, resource.destination_ipv6_cidr_block
    )


def _gateway_attachment(resource: Any, account: str, region: str) -> None:
    ec2_backends[account][region].detach_internet_gateway(resource.gateway_id, resource.vpc_id)


def _ecs_service(resource: Any, account: str, region: str) -> None:
    ecs_backends[account][region].delete_service(resource.cluster_name, resource.name, force=True)


DELETERS: dict[str, Deleter] = {
    "AWS::EC2::SubnetRouteTableAssociation": _route_table_association,
    "AWS::EC2::Route": _route,
    "AWS::EC2::RouteTable": lambda r, a, g: ec2_backends[a][g].delete_route_table(r.id),
    "AWS::EC2::VPCGatewayAttachment": _gateway_attachment,
    "AWS::EC2::InternetGateway": lambda r, a, g: ec2_backends[a][g].delete_internet_gateway(r.id),
    "AWS::EC2::FlowLog": lambda r, a, g: ec2_backends[a][g].delete_flow_logs([r.id]),
    "AWS::ECS::Service": _ecs_service,
    "AWS::ECS::TaskDefinition": lambda r, a, g: ecs_backends[a][g].deregister_task_definition(r.arn),
    "AWS::ECS::Cluster": lambda r, a, g: ecs_backends[a][g].delete_cluster(r.name),
    "AWS::ElasticLoadBalancingV2::Listener": lambda r, a, g: elbv2_backends[a][g].delete_listener(r.arn),
    "AWS::ElasticLoadBalancingV2::TargetGroup": lambda r, a, g: elbv2_backends[a][g].delete_target_group(r.arn),
    "AWS::ApiGateway::RestApi": lambda r, a, g: apigateway_backends[a][g].delete_rest_api(r.id),
}
